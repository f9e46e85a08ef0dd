"""Where the policy's T5 tokenizer comes from: an explicit path, the checkpoint folder, the
local Hugging Face cache, the hub only where huggingface_hub and a network exist."""
import pytest

from octo_ros.inference.tokenizer import TokenizerNotFound, resolve_tokenizer
from octo_ros.model.testing import make_untrained_checkpoint, write_tokenizer
from octo_ros.ros.graph import describe
from octo_ros.ros.launcher import node_command, write_params_file
from octo_ros_msgs.srv import SetInstruction


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A Hugging Face cache folder with nothing in it, and no way to the hub."""
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _cached_t5(cache, repo="models--t5-base", revision="a9723ea7f1b39c1eae772870f3b547bf6ef7e6c4"):
    snapshot = cache / repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (cache / repo / "refs").mkdir()
    (cache / repo / "refs" / "main").write_text(revision)
    return write_tokenizer(snapshot)


def test_order_explicit_path_then_checkpoint_folder_then_cache(tmp_path, empty_cache):
    checkpoint = tmp_path / "octo-small-1.5"
    checkpoint.mkdir()
    cached = _cached_t5(empty_cache)
    assert resolve_tokenizer("", checkpoint).path == cached
    assert resolve_tokenizer("", checkpoint).source == "Hugging Face cache (t5-base)"

    shipped = write_tokenizer(checkpoint)
    for setting in ("", "t5-base"):  # the folder wins over a hub name, cached or not
        choice = resolve_tokenizer(setting, checkpoint)
        assert (choice.path, choice.source) == (shipped, "checkpoint folder")

    explicit = write_tokenizer((tmp_path / "t5").mkdir() or tmp_path / "t5")
    for setting in (str(explicit), str(explicit.parent)):
        choice = resolve_tokenizer(setting, checkpoint)
        assert (choice.path, choice.source) == (explicit, "tokenizer parameter")


def test_hub_names_in_the_cache(tmp_path, empty_cache):
    cached = _cached_t5(empty_cache, repo="models--google-t5--t5-base")
    assert resolve_tokenizer("", tmp_path).path == cached, "t5-base now lives under google-t5/ on the hub"
    assert resolve_tokenizer("google-t5/t5-base", tmp_path).path == cached


def test_nothing_found_says_where_it_looked(tmp_path, empty_cache):
    choice = resolve_tokenizer("", tmp_path)
    assert choice.path is None
    text = " ".join(choice.looked)
    assert str(tmp_path / "spiece.model") in text and str(empty_cache) in text and "HF_HUB_OFFLINE" in text
    with pytest.raises(TokenizerNotFound, match="tokenizer path not found: /models/t5-base"):
        resolve_tokenizer("/models/t5-base", tmp_path)
    with pytest.raises(TokenizerNotFound, match="holds neither spiece.model nor tokenizer.json"):
        resolve_tokenizer(str(tmp_path), tmp_path)
    with pytest.raises(TokenizerNotFound, match="t5-large.*not in the Hugging Face cache"):
        resolve_tokenizer("t5-large", tmp_path)


def test_policy_from_the_robot_config_uses_the_checkpoint_folder_offline(ros, tmp_path, empty_cache):
    """The README's `ros2 launch octo_ros widowx.launch.py checkpoint:=...` on a machine without
    a hub: the robot's config must not make a hub name win over the checkpoint folder."""
    checkpoint = make_untrained_checkpoint(tmp_path / "checkpoint")
    (spec,) = [s for s in describe("widowx", arguments={"checkpoint": str(checkpoint),
                                                         "dataset_statistics_key": "untrained"}) if s.name == "policy"]
    proc = ros.spawn("policy", node_command(spec, write_params_file(spec, tmp_path))[1:])
    client = ros.node("tokenizer_test").create_client(SetInstruction, "/policy/set_instruction")
    ros.wait_for(client.service_is_ready, 90, "the policy's services")
    reply = ros.call(client, SetInstruction.Request(instruction="put the spoon in the bowl"), timeout=30)
    assert reply.success, reply.message + proc.output()
    assert f"tokenizer {checkpoint / 'spiece.model'} (checkpoint folder)" in proc.output()


def test_every_simulated_task_instruction_is_in_the_vocabulary(tmp_path):
    """The checkpoints octo_ros writes (tests, tools/train_demo_policy.sh) tokenize each simulated
    task's instructions without <unk>, and distinct instructions into distinct tokens: with
    'green' and 'yellow' outside the vocabulary a policy was trained to reach one of two blocks
    that the instruction could not tell apart."""
    import sentencepiece as spm

    from octo_ros.robots.bimanual.sim import TASKS as BIMANUAL
    from octo_ros.robots.ur5.sim import TASKS as UR5
    from octo_ros.robots.widowx.sim import TASKS as WIDOWX
    from octo_ros.sim.reach import BLOCK_COLOURS

    sp = spm.SentencePieceProcessor(model_file=str(write_tokenizer(tmp_path)))
    texts = {spec.instruction for spec in BIMANUAL.values()}
    texts |= {config.instruction.format(colour=c) for config in (*UR5.values(), *WIDOWX.values()) for c in BLOCK_COLOURS}
    encoded = {text: tuple(sp.encode(text)) for text in texts}
    assert len(texts) == len(BLOCK_COLOURS) + 1
    for text, ids in encoded.items():
        assert sp.unk_id() not in ids, f"{text!r}: {sp.encode(text, out_type=str)} has an <unk>"
    assert len(set(encoded.values())) == len(texts)
