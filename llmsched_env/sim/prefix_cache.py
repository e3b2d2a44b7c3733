"""Automatic prefix caching: KV blocks shared by requests with a common prompt prefix.

The semantics are vLLM's automatic prefix caching (``vllm/v1/core/block_pool.py`` and
``kv_cache_manager.py``), on the engine's block counts:

* A request carries the **hash chain** of its blocks (``Request.block_hashes``): the i-th value
  identifies the whole token prefix up to the end of block i, so two requests share block i
  exactly when their chains agree up to i. Only full blocks are ever cached.
* At admission the engine looks up the longest chain prefix that is cached (at most
  ``(prefill_target - 1) // block_size`` blocks: at least one token is always computed, as in
  vLLM), takes a reference on each of those blocks and prefills only the rest.
* A block a request computes is cached (registered under its hash) once the prefill chunk that
  fills it has run, or, for blocks of generated tokens, when the request finishes. If its hash
  was cached meanwhile (two requests computing the same prefix at once) the request shares that
  copy and frees its own.
* A cached block is *referenced* while a request in the system holds it (reference counts);
  when its last user leaves (finishes or is preempted) it stays cached but *evictable*. The
  blocks of a leaving request are released from the last to the first, so the tail of a chain is
  evicted before its head (vLLM frees in reverse order for the same reason).
* Evictable blocks count as free KV: an allocation that finds no empty block evicts the least
  recently released evictable block. Unlike vLLM's single free queue, which hands out the least
  recently freed block whether or not it holds a cached prefix, empty blocks are used first, so a
  cached block is evicted only when memory is needed (SGLang's radix cache does the same).

Accounting (what the engine's counters mean with caching on): ``Request.blocks`` is still the
number of blocks a request's KV spans; ``len(Request.cache_refs)`` of them are cached blocks it
references, the rest are private. The engine's ``free_blocks`` counts empty plus evictable
blocks, so ``sum(r.blocks - len(r.cache_refs)) + referenced + free_blocks == num_blocks``. The
engine allocates by decrementing ``free_blocks`` (never calling the cache on its hot path); the
cache settles the evictions those allocations implied (:meth:`PrefixCache.settle`) before every
operation, which is exact because evictions depend only on the LRU order and on how many free
blocks are left.

Block sizes. Hash chains may come in blocks of another size than the engine's
(``RequestBatch.block_hash_size``; the Mooncake traces hash 512-token blocks):
:func:`engine_chain` maps them. If the engine block is a multiple ``m`` of the source block,
engine block i takes the hash of source block ``(i+1)*m - 1`` (its last one: a chain value
identifies the whole prefix). If the source block is a multiple ``m`` of the engine block,
engine block i gets ``m * source[i // m] + i % m``, distinct for distinct sources. A chain is cut
to the full engine blocks of the tokens it covers.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from .validation import ConfigError


class PrefixCache:
    """The hashes of the cached blocks of one engine, their reference counts and LRU order.

    ``refs`` maps each cached block's hash to the number of requests in the system that hold it
    (0: evictable); ``evictable`` holds the hashes with no holder, least recently released first.
    """

    def __init__(self) -> None:
        self.refs: dict[int, int] = {}
        self.evictable: OrderedDict[int, None] = OrderedDict()
        self.evictions = 0  # cached blocks evicted so far

    @property
    def cached_blocks(self) -> int:
        return len(self.refs)

    @property
    def referenced_blocks(self) -> int:
        """Cached blocks some request in the system holds."""
        return len(self.refs) - len(self.evictable)

    def settle(self, free_blocks: int) -> None:
        """Evict least recently released blocks until the evictable ones fit in ``free_blocks``
        (the engine's free count, empty plus evictable, after its latest allocations)."""
        excess = len(self.evictable) - free_blocks
        while excess > 0:
            h, _ = self.evictable.popitem(last=False)
            del self.refs[h]
            self.evictions += 1
            excess -= 1

    def match(self, chain: Sequence[int], limit: int) -> tuple[int, int]:
        """Longest cached prefix of ``chain`` (at most ``limit`` blocks): ``(blocks, revived)``,
        revived being how many of them are evictable (taking them uses free blocks)."""
        refs = self.refs
        n = min(limit, len(chain))
        hit = revived = 0
        while hit < n:
            count = refs.get(chain[hit], -1)
            if count < 0:
                break
            if count == 0:
                revived += 1
            hit += 1
        return hit, revived

    def acquire(self, chain: Sequence[int], blocks: int) -> list[int]:
        """Take a reference on the first ``blocks`` blocks of ``chain`` (all cached)."""
        refs, evictable = self.refs, self.evictable
        taken = list(chain[:blocks])
        for h in taken:
            count = refs[h]
            if count == 0:
                del evictable[h]
            refs[h] = count + 1
        return taken

    def register(self, chain: Sequence[int], held: list[int], full_blocks: int) -> int:
        """Cache the blocks of ``chain`` up to ``full_blocks`` that the request computed itself
        (those past the ``len(held)`` it already references), appending their hashes to
        ``held``. A hash someone else cached first (two requests computing the same prefix at
        once) is shared instead: the request switches to the cached copy and frees its own, as
        SGLang's radix cache keeps one copy (vLLM keeps both until one is evicted). Returns the
        number of blocks this frees."""
        refs, evictable = self.refs, self.evictable
        stop = min(full_blocks, len(chain))
        freed = 0
        for i in range(len(held), stop):
            h = chain[i]
            count = refs.get(h, -1)
            if count < 0:
                refs[h] = 1
            else:
                if count == 0:
                    del evictable[h]  # revived: it stops counting as free, the own copy starts
                else:
                    freed += 1
                refs[h] = count + 1
            held.append(h)
        return freed

    def release(self, held: list[int]) -> int:
        """Drop a leaving request's references, last block first; returns how many blocks became
        evictable (they now count as free)."""
        refs, evictable = self.refs, self.evictable
        freed = 0
        for h in reversed(held):
            count = refs[h] - 1
            if count < 0:
                raise RuntimeError(f"prefix cache: block {h} released more often than acquired (engine bug)")
            refs[h] = count
            if count == 0:
                evictable[h] = None
                freed += 1
        held.clear()
        return freed

    def check(self, free_blocks: int, holders: Sequence[list[int]]) -> None:
        """Raise AssertionError unless the counts agree with the requests' references."""
        counts: dict[int, int] = {}
        for held in holders:
            assert len(set(held)) == len(held), "a request references a block twice"
            for h in held:
                counts[h] = counts.get(h, 0) + 1
        for h, count in self.refs.items():
            assert counts.get(h, 0) == count, (h, count, counts.get(h, 0))
            assert (count == 0) == (h in self.evictable), h
        assert set(counts) <= set(self.refs), "a request references an uncached block"
        assert len(self.evictable) <= free_blocks, (len(self.evictable), free_blocks)


def engine_chain(source: Sequence[int], source_block: int, block_size: int, tokens: int) -> list[int]:
    """The hash chain in engine blocks of ``block_size`` tokens of a chain in blocks of
    ``source_block`` tokens, cut to the full engine blocks of the first ``tokens`` tokens that
    the source chain covers (see the module docstring)."""
    if source_block == block_size:
        n = min(len(source), tokens // block_size)
        return list(source[:n])
    if source_block % block_size == 0:
        m = source_block // block_size
        n = min(len(source) * m, tokens // block_size)
        return [m * source[i // m] + i % m for i in range(n)]
    if block_size % source_block == 0:
        m = block_size // source_block
        n = min(len(source) // m, tokens // block_size)
        return [source[(i + 1) * m - 1] for i in range(n)]
    raise ConfigError(
        f"block_hash_size={source_block} is invalid for block_size={block_size}: expected one to be a multiple of the other"
    )


def prefix_summary(stats: object, cache: PrefixCache | None) -> dict[str, float]:
    """Hit rates and savings from an engine's ``EngineStats`` (empty when caching is off).

    ``prefix_hit_rate_tokens``: prefill tokens found cached / prefill tokens at admissions from
    waiting (first admissions and readmissions after a recompute or restart preemption);
    ``prefix_hit_rate_blocks``: cached blocks found / full chain blocks a hit could have covered;
    ``prefill_tokens_saved``: the tokens found cached; ``prefix_evictions``: cached blocks evicted.
    """
    if cache is None:
        return {}
    query_tokens = getattr(stats, "prefix_query_tokens")
    query_blocks = getattr(stats, "prefix_query_blocks")
    hit_tokens = getattr(stats, "prefix_hit_tokens")
    return {
        "prefix_hit_rate_tokens": hit_tokens / query_tokens if query_tokens else 0.0,
        "prefix_hit_rate_blocks": getattr(stats, "prefix_hit_blocks") / query_blocks if query_blocks else 0.0,
        "prefill_tokens_saved": float(hit_tokens),
        "prefix_evictions": float(cache.evictions),
    }
