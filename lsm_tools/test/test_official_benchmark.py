"""lsm-benchmark --paper --official PATH: a path that is not an NVlabs/LSM checkout is refused at
once, naming what is missing, and the official row's ratios reach the paper table. (The official
run itself needs the checkout, ~10 GB RAM and minutes: not run here.)"""
from __future__ import annotations

import pytest

from lsm_tools.official_benchmark import (
    CHECKOUT_FILES,
    OfficialCheckoutError,
    check_checkout,
    measure_official,
    ratios,
)


def test_a_folder_that_is_not_an_lsm_checkout_is_refused_naming_what_is_missing(tmp_path):
    (tmp_path / "README.md").write_text("not LSM")
    with pytest.raises(OfficialCheckoutError, match="is not an NVlabs/LSM checkout") as err:
        measure_official(tmp_path, tmp_path / "state.pt", tmp_path / "inputs.pt")
    assert "large_spatial_model/model.py" in str(err.value)
    assert "clone https://github.com/NVlabs/LSM" in str(err.value)
    with pytest.raises(OfficialCheckoutError, match="not a directory"):
        check_checkout(tmp_path / "absent")


def test_a_checkout_without_its_submodules_is_told_to_fetch_them(tmp_path):
    for name in CHECKOUT_FILES:
        if not name.startswith("submodules/"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text("")
    with pytest.raises(OfficialCheckoutError, match="git submodule update --init --recursive") as err:
        check_checkout(tmp_path)
    assert "submodules/PointTransformerV3/model.py" in str(err.value)
    assert "large_spatial_model/model.py" not in str(err.value)
    for name in CHECKOUT_FILES:  # complete: accepted
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert check_checkout(tmp_path) == tmp_path.resolve()


def test_lsm_benchmark_refuses_a_wrong_official_path_before_measuring(tmp_path, capsys):
    from lsm_tools.benchmark import main

    with pytest.raises(SystemExit) as exit_:
        main(["--paper", "--official", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert "is not an NVlabs/LSM checkout" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["--official", str(tmp_path)])  # without --paper
    assert "--official needs --paper" in capsys.readouterr().err


def test_ours_over_official_ratios_reach_the_paper_table():
    from lsm_tools.benchmark import _paper_lines

    rows = [{"precision": name, "stages_s": {"encoder": 1.0, "total": total},
             "peak_memory_bytes": peak * 2 ** 20, "working_memory_bytes": 2 ** 20}
            for name, total, peak in (("fp32", 30.0, 7000), ("bf16", 15.0, 7500))]
    official = {"forward_s": 40.0, "runs_s": [40.0, 41.0], "peak_rss_bytes": 10000 * 2 ** 20,
                "working_bytes": 5000 * 2 ** 20, "threads": 2, "official_commit": None,
                "official_path": "/x/LSM",
                "outputs": {"pts3d_max_abs_diff": 3e-7, "pts3d_rel_diff": 2e-6, "tolerance": 1e-3,
                            "equivalent": True}}
    official["ratios"] = ratios(rows, official)
    assert official["ratios"]["bf16"] == {"time": 15.0 / 40.0, "peak_memory": 0.75}
    text = "\n".join(_paper_lines({"image_size": 256, "weights": "random", "rows": rows,
                                   "official": official}))
    assert "| fp32 | 30.00 | 40.00 | 0.75 | 7000 | 10000 | 0.70 |" in text
    assert "| bf16 | 15.00 | 40.00 | 0.38 | 7500 | 10000 | 0.75 |" in text
    assert "same weights confirmed" in text and "commit unknown" in text
