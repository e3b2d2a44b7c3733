"""llmsched-train: tiny training runs, model round trips, the set encoder, behaviour cloning, bad input."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO

import baselines
import llmsched_env  # noqa: F401  (registers the environments)
from llmsched_env.envs.serve import GLOBAL_FEATURES
from llmsched_env.sim import FCFS, simulate
from llmsched_env.sim.observe import NUM_REQUEST_FEATURES
from llmsched_env.sim.validation import ConfigError
from train.agents import act, attach_info, load_model, load_policy, policy_action, run_episode
from train.bc import behaviour_clone, collect, imitation_loss
from train.cli import main
from train.config import TrainConfig, linear_schedule
from train.networks import SetAdmitPolicy, SetRankPolicy

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py
TINY_ENV = {"num_requests": 20, "num_slots": 8}
TINY_NET = {"features_extractor_kwargs": {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32}}


def tiny_config(tmp_path: Path, algo: str, vec_env: str = "dummy") -> Path:
    env_kwargs = dict(TINY_ENV, action_mode="rank" if algo == "ppo" else "admit")
    config = {
        "algo": algo,
        "env_kwargs": env_kwargs,
        "n_timesteps": 256,
        "n_envs": 2,
        "vec_env": vec_env,
        "hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 1, "policy_kwargs": TINY_NET},
        "eval_freq": 128,
        "eval_episodes": 1,
        "eval_baselines": ["fcfs", "trail:C=0.5"],
        "bc": {"teacher": "sjf", "episodes": 2, "epochs": 2},
        "progress_bar": False,
    }
    path = tmp_path / f"{algo}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def event_tags(run_dir: Path, kind: str = "scalars") -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in run_dir.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags.update(accumulator.Tags()[kind] if kind != "hparams" else accumulator.PluginTagToContent("hparams"))
    return tags


@pytest.mark.parametrize("algo, vec_env", [("ppo", "dummy"), ("ppo_mask", "subproc")])
def test_tiny_training_run_writes_models_config_and_eval_curves(tmp_path, algo, vec_env):
    out = tmp_path / "run"
    assert main(["-c", str(tiny_config(tmp_path, algo, vec_env)), "--out", str(out), "-q"]) == 0
    for name in ("final_model.zip", "best_model.zip", "config.yaml", "run.yaml"):
        assert (out / name).is_file(), name
    resolved = TrainConfig.from_dict(yaml.safe_load((out / "config.yaml").read_text()))
    assert resolved.algo == algo and resolved.scenario.env.num_slots == 8 and resolved.scenario.name == "chat-a100-40gb"
    run = yaml.safe_load((out / "run.yaml").read_text())
    assert run["device"] == "cpu" and run["env_seeds"] == [0, 1] and run["eval_sim_seeds"] == [10000]
    assert len(run["bc_sim_seeds"]) == 2 and 10000 not in run["bc_sim_seeds"]
    tags = event_tags(out / "tb")
    for metric in ("e2e_mean", "e2e_p99", "ttft_mean", "throughput"):
        # the agent and each baseline under the same tag, in runs side by side: one chart overlays them
        assert f"eval/{metric}" in tags
        assert f"eval/{metric}" in event_tags(out / "tb" / "baseline-fcfs")
        assert f"eval/{metric}" in event_tags(out / "tb" / "baseline-trail_C_0.5")
    assert {"eval/best_e2e_mean", "bc/imitation_loss", "train/value_loss"} <= tags
    assert {"config/text_summary", "run/text_summary"} <= event_tags(out / "tb", "tensors")
    assert "_hparams_/experiment" in event_tags(out / "tb", "hparams")
    model = load_model(out / "final_model.zip")
    assert model.num_timesteps >= 256 and type(model) is (PPO if algo == "ppo" else MaskablePPO)


@pytest.mark.parametrize("algo", ["ppo", "ppo_mask"])
def test_preemption_control_agents_train_clone_and_evaluate(tmp_path, algo):
    """With preemption_control the heads widen (Box(K, 5) rows, or 4K + 1 logits), behaviour
    cloning fits the teacher's rows, and the saved agent runs with the same action space."""
    path = tiny_config(tmp_path, algo)
    config = yaml.safe_load(path.read_text())
    config["env_kwargs"].update(preemption_control=True, num_gpu_blocks=1500)
    config.update(n_timesteps=128, eval_freq=0)
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["-c", str(path), "--out", str(out), "-q"]) == 0
    agent = load_policy(out / "final_model.zip")
    assert agent.options["preemption_control"] is True
    env = gym.make("llmsched/Serve-v1", **config["env_kwargs"])
    result = agent.simulate(env.unwrapped.config, seed=5)
    s = result.summary
    assert s["arrived"] == 20 and s["finished"] + s["rejected"] == 20


def test_resume_continues_from_a_saved_model(tmp_path):
    first = tmp_path / "first"
    config = tiny_config(tmp_path, "ppo")
    assert main(["-c", str(config), "--out", str(first), "-q", "--no-bc", "--eval-freq", "0"]) == 0
    second = tmp_path / "second"
    args = ["-c", str(config), "--out", str(second), "-q", "-i", str(first / "final_model.zip"), "-n", "128"]
    assert main(args) == 0
    assert load_model(second / "final_model.zip").num_timesteps >= 256 + 128


def test_interrupt_during_behaviour_cloning_saves_the_model(tmp_path, monkeypatch, capsys):
    import train.bc

    fits = []

    def interrupted_fit(policy, demos, **kwargs):
        fits.append(policy)
        raise KeyboardInterrupt  # Ctrl-C while fitting

    monkeypatch.setattr(train.bc, "behaviour_clone", interrupted_fit)
    out = tmp_path / "run"
    assert main(["-c", str(tiny_config(tmp_path, "ppo")), "--out", str(out), "-q"]) == 130
    assert fits and (out / "final_model.zip").is_file()
    assert load_model(out / "final_model.zip").num_timesteps == 0  # no PPO after the interrupt
    captured = capsys.readouterr()
    assert "interrupted during behaviour cloning: saving the model" in captured.err and "Traceback" not in captured.err
    assert "llmsched-train: interrupted: 0 PPO steps" in captured.out


def tiny_model(mode: str, seed: int = 0):
    env = gym.make("llmsched/Serve-v1", **TINY_ENV, action_mode=mode)
    algo, policy = (PPO, SetRankPolicy) if mode == "rank" else (MaskablePPO, SetAdmitPolicy)
    model = algo(policy, env, n_steps=64, batch_size=64, seed=seed, device="cpu", policy_kwargs=TINY_NET)
    attach_info(model, "ppo" if mode == "rank" else "ppo_mask", "llmsched/Serve-v1", dict(TINY_ENV, action_mode=mode))
    return model, env


@pytest.mark.parametrize("mode", ["rank", "admit"])
def test_save_load_round_trip_gives_identical_actions(tmp_path, mode):
    model, env = tiny_model(mode)
    model.learn(64)  # move the weights off their initial values
    model.save(tmp_path / "m.zip")
    loaded = load_policy(tmp_path / "m.zip")
    assert loaded.name == "m" and loaded.options["action_mode"] == mode and loaded.options["num_slots"] == 8
    obs, _ = env.reset(options={"sim_seed": 3})
    for _ in range(30):
        kwargs = {"action_masks": env.unwrapped.action_masks()} if mode == "admit" else {}
        a, _ = model.predict(obs, deterministic=True, **kwargs)
        b, _ = loaded.model.predict(obs, deterministic=True, **kwargs)
        np.testing.assert_array_equal(a, b)
        obs, _, terminated, truncated, _ = env.step(a if mode == "rank" else int(a))
        if terminated or truncated:
            break


@pytest.mark.parametrize("mode, control", [("rank", False), ("admit", False), ("rank", True), ("admit", True)])
def test_fast_act_is_the_deterministic_predict(mode, control):
    kwargs = dict(TINY_ENV, action_mode=mode, preemption_control=control, num_gpu_blocks=1500)
    env = gym.make("llmsched/Serve-v1", **kwargs)
    algo, policy = (PPO, SetRankPolicy) if mode == "rank" else (MaskablePPO, SetAdmitPolicy)
    model = algo(policy, env, n_steps=64, batch_size=64, seed=0, device="cpu", policy_kwargs=TINY_NET)
    model.learn(64)
    obs, _ = env.reset(options={"sim_seed": 2})
    for _ in range(40):
        extra = {"action_masks": env.unwrapped.action_masks()} if mode == "admit" else {}
        expected, _ = model.predict(obs, deterministic=True, **extra)
        action = act(model, env, obs)
        if mode == "admit":
            if action != int(expected):  # an exact tie (two identical slots) may be broken either way
                with torch.no_grad():
                    dist = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0], action_masks=extra["action_masks"])
                    logits = dist.distribution.logits[0]
                assert float(logits[action]) == pytest.approx(float(logits.max()), abs=1e-6)
        else:
            np.testing.assert_allclose(action, expected, rtol=0, atol=1e-6)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break


def test_traced_encoder_equals_the_module_for_any_number_of_slots(tmp_path):
    model, _ = tiny_model("rank")
    model.learn(64)
    model.save(tmp_path / "m.zip")
    agent = load_policy(tmp_path / "m.zip")
    assert agent.encoder is not None
    generator = torch.Generator().manual_seed(0)
    for n in (1, 3, 8):
        obs = {
            "requests": torch.rand(1, n, NUM_REQUEST_FEATURES, generator=generator),
            "mask": (torch.arange(n) < max(n - 1, 1)).float().unsqueeze(0),
            "globals": torch.rand(1, len(GLOBAL_FEATURES), generator=generator),
        }
        with torch.no_grad():
            torch.testing.assert_close(agent.encoder(obs), agent.model.policy.features_extractor(obs), rtol=0, atol=1e-6)


def test_loaded_policy_simulates_like_its_env_and_like_simulate():
    """load_policy(...).simulate gives a SimResult with the env episode's records and simulate()'s keys."""
    model, env = tiny_model("rank")
    agent = load_policy_from(model)
    config = env.unwrapped.config
    result = agent.simulate(config, seed=5)
    info = run_episode(model, env, 5)
    np.testing.assert_allclose(
        np.sort(result.records["finish_time"]), np.sort(env.unwrapped.records.to_arrays()["finish_time"])
    )
    assert result.summary["e2e_mean_s"] == info["summary"]["e2e_mean_s"]
    reference = simulate(config, FCFS(), seed=5)
    assert set(reference.summary) <= set(result.summary)
    assert result.seed == 5 and result.policy == "agent" and result.summary["arrived"] == 20


def load_policy_from(model):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "agent.zip")
        return load_policy(Path(folder) / "agent.zip")


def test_eval_runner_runs_a_trained_model(tmp_path):
    """The contract with llmsched-eval: a model path is a policy its runner can execute."""
    from eval.policies import PolicyEntry
    from eval.runner import Run, execute

    model, env = tiny_model("admit")
    model.save(tmp_path / "agent.zip")
    config = env.unwrapped.config.replace(seed=2)
    run = Run(0, PolicyEntry("agent", str(tmp_path / "agent.zip"), "model"), "sharegpt", "llama2-7b/a100", None, "load", 0.9, 2, config)
    result = execute(run)
    assert result.record["finished"] == 20 and result.record["policy"] == "agent"
    assert len(result.latencies["e2e"]) == 20


def random_obs(num_slots: int, present: int, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    requests = rng.uniform(0, 1, (1, num_slots, 17)).astype(np.float32)
    mask = np.zeros((1, num_slots), np.float32)
    mask[0, :present] = 1.0
    requests[0, present:] = 0.0
    return {
        "requests": torch.as_tensor(requests),
        "mask": torch.as_tensor(mask),
        "globals": torch.as_tensor(rng.uniform(0, 1, (1, 12)).astype(np.float32)),
    }


def heads(policy, obs):
    with torch.no_grad():
        latent_pi, latent_vf = policy.mlp_extractor(policy.extract_features(obs))
        return policy.action_net(latent_pi)[0].numpy(), policy.value_net(latent_vf).item()


@pytest.mark.parametrize("mode", ["rank", "admit"])
def test_set_encoder_is_permutation_equivariant(mode):
    model, _ = tiny_model(mode)
    policy = model.policy
    for p in policy.action_net.parameters():  # the heads start near zero; make the outputs distinct
        torch.nn.init.normal_(p)
    obs = random_obs(8, present=5)
    permutation = np.array([3, 7, 0, 5, 1, 6, 2, 4])  # moves real and empty slots alike
    permuted = {k: v[:, permutation] if k in ("requests", "mask") else v for k, v in obs.items()}
    out, value = heads(policy, obs)
    out_p, value_p = heads(policy, permuted)
    np.testing.assert_allclose(out_p[:8], out[:8][permutation], rtol=1e-5, atol=1e-6)
    assert value_p == pytest.approx(value, rel=1e-5)
    assert len(np.unique(np.round(out[:5], 4))) == 5  # real slots get distinct outputs
    if mode == "rank":
        assert np.all(out[5:] == 0.0)  # empty slots: mean exactly 0
    else:
        assert out_p[8] == pytest.approx(out[8], rel=1e-5)  # the advance logit is invariant


@pytest.mark.parametrize("mode", ["rank", "admit"])
def test_empty_queue_gives_finite_outputs(mode):
    model, _ = tiny_model(mode)
    out, value = heads(model.policy, random_obs(8, present=0))
    assert np.all(np.isfinite(out)) and np.isfinite(value)
    distribution = model.policy.get_distribution(random_obs(8, present=0))
    assert torch.isfinite(distribution.entropy()).all()


@pytest.mark.parametrize("mode", ["rank", "admit"])
def test_behaviour_cloning_lowers_the_imitation_loss(mode):
    model, env = tiny_model(mode)
    demos = collect(baselines.parse("sjf"), env, [0, 1, 2], gamma=0.99)
    assert len(demos) > 50 and demos.actions.shape[0] == len(demos.returns)
    before = imitation_loss(model.policy, demos)
    history = behaviour_clone(model.policy, demos, epochs=50, batch_size=64, learning_rate=3e-3)
    after = imitation_loss(model.policy, demos)
    assert after < 0.5 * before and history[-1] < history[0]


def test_policy_action_makes_the_env_follow_the_heuristic():
    """FCFS acting through the env (rank mode) gives the engine's FCFS run request by request."""
    env = gym.make("llmsched/Serve-v1", num_requests=60, num_slots=256, load=0.95, num_gpu_blocks=1500)
    fcfs = baselines.parse("fcfs")
    obs, _ = env.reset(options={"sim_seed": 4})
    done = False
    while not done:
        action = policy_action(fcfs, env)
        present = int(obs["mask"].sum())
        assert np.all(np.diff(action[:present][np.argsort([r.arrival for r in env.unwrapped.slots])]) < 0)
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    agent = env.unwrapped.records.to_arrays()
    direct = simulate(env.unwrapped.config, fcfs, seed=4).records
    a, d = np.argsort(agent["id"]), np.argsort(direct["id"])
    np.testing.assert_allclose(agent["finish_time"][a], direct["finish_time"][d], rtol=1e-9)


def test_policy_action_in_admit_mode_admits_the_teachers_first_pick():
    env = gym.make("llmsched/Serve-v1", num_requests=30, num_slots=16, action_mode="admit")
    env.reset(options={"sim_seed": 1})
    sjf = baselines.parse("sjf")
    for _ in range(200):
        u = env.unwrapped
        held = [i for i, r in enumerate(u.slots) if r.held]
        action = policy_action(sjf, env)
        if held:
            assert action == min(held, key=lambda i: (u.slots[i].initial_prediction, u.slots[i].arrival))
        else:
            assert action == u.num_slots
        _, _, terminated, truncated, info = env.step(action)
        assert not info["invalid_action"]
        if terminated or truncated:
            break


def test_default_config_file_is_the_builtin_default():
    data = yaml.safe_load((ROOT / "configs" / "train" / "default.yaml").read_text())
    assert TrainConfig.from_dict(data) == TrainConfig()


SB3_CONFIGS = sorted(p for p in (ROOT / "configs" / "train").glob("*.yaml") if not p.name.startswith("rllib_"))  # rllib_*: test_rllib.py


@pytest.mark.parametrize("path", SB3_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    TrainConfig.from_dict(yaml.safe_load(path.read_text()), where=str(path))


def test_linear_schedules_and_hyperparams():
    config = TrainConfig(hyperparams={"learning_rate": "lin_1e-3", "n_steps": 64})
    schedule = config.algo_kwargs()["learning_rate"]
    assert schedule(1.0) == pytest.approx(1e-3) and schedule(0.25) == pytest.approx(2.5e-4)
    assert linear_schedule(2.0)(0.5) == 1.0
    with pytest.raises(ConfigError, match="hyperparams.learning_rate='fast'"):
        TrainConfig(hyperparams={"learning_rate": "fast"})


BAD_INPUT = [
    (["--algo", "a2c"], "algo='a2c' is invalid: expected one of 'ppo', 'ppo_mask'"),
    (["--env", "CartPole-v1"], "env='CartPole-v1' is invalid: expected one of llmsched/Serve-v2"),
    (["--scenario", "chat-bursty:x"], "expected NAME or NAME:WEIGHT"),
    (["--scenario", "nope"], "scenario='nope' is invalid"),
    (["--env-kwargs", "action_mode:admit"], "algo='ppo' cannot handle action_mode='admit': use algo=ppo_mask"),
    (["--algo", "ppo_mask"], "algo='ppo_mask' cannot handle action_mode='rank': use algo=ppo"),
    (["--hyperparams", "learning_rat:0.1"], "unknown key(s) 'learning_rat'"),
    (["--env-kwargs", "num_slot:8"], "unknown argument(s) 'num_slot'"),
    (["--bc-teacher", "shortest"], "baseline='shortest' is invalid"),
    (["--device", "tpu"], "device='tpu' is invalid: expected auto, cpu, cuda or cuda:N"),
    (["--n-envs", "0"], "n_envs=0 is invalid"),
    (["-i", "missing.zip"], "model file does not exist"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("llmsched-train: error: ")


def test_config_key_typo_is_named(tmp_path, capsys):
    path = tmp_path / "typo.yaml"
    path.write_text("n_timestep: 5\n")
    assert main(["-c", str(path)]) == 2
    assert "unknown key(s) 'n_timestep'; allowed keys are" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_cuda_is_an_error(tmp_path, capsys):
    assert main(["--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    assert "device='cuda' is unavailable" in capsys.readouterr().err


def test_loading_a_foreign_file_is_a_config_error(tmp_path):
    path = tmp_path / "x.zip"
    path.write_text("not a zip")
    with pytest.raises(ConfigError, match="not a stable-baselines3 model zip"):
        load_policy(path)


def test_area_curve_integrates_the_number_in_system():
    from train.rewards import AreaCurve

    curve = AreaCurve(np.array([1.0, 0.0]), np.array([4.0, 2.0]))  # requests in [0, 2] and [1, 4]
    assert [curve(t) for t in (0.0, 1.0, 2.0, 3.0, 4.0, 9.0)] == [0.0, 1.0, 3.0, 4.0, 5.0, 5.0]
    assert curve.total == 5.0


@pytest.mark.parametrize("teacher", ["fcfs", "sjf"])
def test_reference_reward_returns_the_percentage_saved_over_the_reference(teacher):
    from train.rewards import ReferenceReward

    env = ReferenceReward(gym.make("llmsched/Serve-v1", num_requests=40, load=1.0, num_slots=64), "fcfs")
    policy = baselines.parse(teacher)
    env.reset(options={"sim_seed": 7})
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(policy_action(policy, env))
        total += reward
        done = terminated or truncated
    reference = simulate(env.unwrapped.config, baselines.parse("fcfs"), seed=7).summary["e2e_mean_s"]
    assert total == pytest.approx(100 * (1 - info["summary"]["e2e_mean_s"] / reference), abs=1e-9)
    if teacher == "fcfs":
        assert total == pytest.approx(0.0, abs=1e-9)


def test_dagger_rounds_label_the_students_own_states():
    model, env = tiny_model("rank")
    teacher = baselines.parse("sjf")
    demos = collect(teacher, env, [0], gamma=0.99)
    behaviour_clone(model.policy, demos, epochs=5, batch_size=64, learning_rate=3e-3)
    student_demos = collect(teacher, env, [0], gamma=0.99, student=model)
    # the same workload, but the student's actions drive it: labels stay the teacher's
    assert len(student_demos) > 0
    env.reset(options={"sim_seed": 0})
    np.testing.assert_array_equal(student_demos.actions[0], policy_action(teacher, env))


def test_resuming_with_another_algorithm_is_an_error(tmp_path, capsys):
    model, _ = tiny_model("admit")
    model.save(tmp_path / "admit.zip")
    assert main(["-i", str(tmp_path / "admit.zip"), "--out", str(tmp_path / "run")]) == 2
    assert "was trained with algo='ppo_mask', not algo='ppo'" in capsys.readouterr().err


def test_ranking_loss_counts_the_teachers_ordered_pairs():
    from train.bc import RANKING_TEMPERATURE, _ranking_loss

    targets = torch.tensor([[1.0, 0.0, -1.0, 0.0]])
    occupied = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last slot is empty: no pairs with it
    right = torch.tensor([[0.5, 0.0, -0.5, 9.0]])
    wrong = torch.tensor([[-0.5, 0.0, 0.5, 9.0]])
    # three ordered pairs with margins 0.5, 1.0, 0.5 (right) or their negatives (wrong)
    expected = np.mean(np.log1p(np.exp(-np.array([0.5, 1.0, 0.5]) / RANKING_TEMPERATURE)))
    assert _ranking_loss(right, targets, occupied).item() == pytest.approx(expected, rel=1e-5)
    assert _ranking_loss(wrong, targets, occupied).item() > 9.0


def test_rl_zoo3_hyperparameters_build_the_same_ppo():
    """configs/train/rl_zoo3.yml (rl-zoo3's format: the policy by dotted name, policy_kwargs as a
    Python expression) builds PPO with the set policy and the default config's hyperparameters."""
    import importlib

    entry = yaml.safe_load((ROOT / "configs" / "train" / "rl_zoo3.yml").read_text())["llmsched/Serve-v1"]
    module, _, name = entry.pop("policy").rpartition(".")
    policy = getattr(importlib.import_module(module), name)
    assert policy is SetRankPolicy
    policy_kwargs = eval(entry.pop("policy_kwargs"))  # what rl-zoo3 does with it
    n_envs, n_timesteps = entry.pop("n_envs"), entry.pop("n_timesteps")
    default = TrainConfig()
    assert (n_envs, n_timesteps) == (default.n_envs, default.n_timesteps)
    for key, value in entry.items():
        assert default.hyperparams[key] == pytest.approx(value), key
    assert policy_kwargs == default.hyperparams["policy_kwargs"]
    model = PPO(policy, gym.make("llmsched/Serve-v1", **TINY_ENV), device="cpu", policy_kwargs=policy_kwargs, **entry)
    assert isinstance(model.policy, SetRankPolicy)


# -- routing agents: llmsched-train on a cluster scenario --------------------------------------------


def test_a_cluster_scenario_trains_a_router_that_eval_runs_as_a_router(tmp_path):
    import gymnasium as gym

    from eval.policies import expand
    from llmsched_env import scenarios
    from llmsched_env.sim.cluster import Cluster
    from train.cli import main as train_main
    from train.router import load_policy

    out = tmp_path / "router"
    code = train_main([
        "--scenario", "cluster-hetero", "-n", "128", "--hyperparams", "n_steps:64", "batch_size:32",
        "--eval-episodes", "1", "--env-kwargs", "episode_requests:40", "eval_requests:40", "--out", str(out), "-q",
    ])  # fmt: skip
    assert code == 0 and (out / "final_model.zip").is_file() and (out / "best_model.zip").is_file()
    runs = {p.name for p in (out / "tb").iterdir() if p.is_dir()}
    assert {"baseline-round_robin", "baseline-weighted"} <= runs  # the routers overlay the agent's eval/* charts
    router = load_policy(out / "final_model.zip")
    assert hasattr(router, "route")
    assert [e.kind for e in expand((str(out / "final_model.zip"),))] == ["router"]
    # the router on the cluster is exactly the env episode with the model acting
    config = scenarios.cluster_config("cluster-hetero", num_requests=30)
    direct = Cluster(config, seed=7).run(router).summary
    from llmsched_env.envs.cluster import ClusterEnv

    env = ClusterEnv.from_config(config)
    obs, info = env.reset(options={"sim_seed": 7})
    done = False
    while not done:
        action, _ = router.model.predict(obs, deterministic=True, action_masks=env.action_masks())
        obs, _, terminated, truncated, info = env.step(int(action))
        done = terminated or truncated
    assert info["summary"]["e2e_mean_s"] == pytest.approx(direct["e2e_mean_s"], rel=1e-12)
    assert gym.make  # the env id is registered (imported above through llmsched_env)


def test_router_training_rejects_the_flags_of_scheduling_agents(capsys):
    from train.cli import main as train_main

    assert train_main(["--scenario", "cluster-hetero", "--bc-teacher", "sjf"]) == 2
    assert "--bc-teacher: not for a routing agent" in capsys.readouterr().err
    assert train_main(["--scenario", "cluster-hetero", "chat-bursty"]) == 2
    assert "one cluster scenario" in capsys.readouterr().err
    assert train_main(["--scenario", "cluster-hetero", "--env-kwargs", "load:0.5"]) == 2
    assert "episode_requests and eval_requests" in capsys.readouterr().err
    assert train_main(["--scenario", "cluster-hetero", "--hyperparams", "nope:1"]) == 2
    assert "nope" in capsys.readouterr().err
    assert train_main(["--scenario", "cluster-hetero", "--hyperparams", "learning_rate:-1"]) == 2
    assert "hyperparams.learning_rate=-1" in capsys.readouterr().err  # the Serve agents' bounds, one check
