"""scripts/stated_distillation.py: which answers a run writes, and a held-out axis never among them."""

import sys
from pathlib import Path

import pytest

from personalign.catalog import lookup

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import stated_distillation  # noqa: E402  (a script, importable once its folder is on the path)


def tags(settings):
    return [tag for tag, _ in stated_distillation.user_infos(settings)]


def test_every_dimension_is_answered_stated_unless_the_run_names_some():
    assert tags({}) == ["neutral", *stated_distillation.BACKGROUNDS]
    held = dict(dimensions=["concise", "friendly"], samples=2, sampled=["friendly"])
    assert tags(held) == ["neutral", "concise", "friendly", "friendly~1", "friendly~2"]
    assert dict(stated_distillation.user_infos(held))["friendly~2"] == lookup("friendly").text


@pytest.mark.parametrize("flags, named", [
    (["--hold-out", "psoups:expert,psoups:shouty"], "--hold-out"),
    (["--hold-out", ",".join(f"psoups:{dim}" for dim in stated_distillation.BACKGROUNDS)], "--hold-out"),
    (["--hold-out", "psoups:expert", "--samples", "2", "--sampled", "expert"], "--sampled")])
def test_a_held_out_or_unknown_dimension_is_refused_before_anything_is_written(flags, named, tmp_path, monkeypatch,
                                                                                capsys):
    monkeypatch.setattr(sys, "argv", ["stated_distillation.py", "--out", str(tmp_path / "out"), *flags])
    with pytest.raises(SystemExit) as exit_:
        stated_distillation.main()
    assert exit_.value.code == 2 and named in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
