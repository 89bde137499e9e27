"""One source for the node's parameters and interfaces: the shipped YAML and the README's
tables are generated from the code, and a disagreement is caught."""
from __future__ import annotations

import pytest
import yaml

pytest.importorskip("rclpy")

from lsm_tools import reference  # noqa: E402


def test_yaml_and_readme_tables_are_what_the_code_generates():
    assert reference.differences() == []


def test_a_changed_default_or_table_row_is_caught(monkeypatch):
    import dataclasses

    from lsm_ros import parameters

    readme = reference.README.read_text()
    edited = readme.replace("| `point_stride` (run-time) | `2` |",
                            "| `point_stride` (run-time) | `3` |")
    assert edited != readme
    assert reference.readme_with_tables(edited) == readme  # the generator restores it
    specs = tuple(dataclasses.replace(s, default=3) if s.name == "point_stride" else s
                  for s in parameters.PARAMETER_SPECS)
    monkeypatch.setattr(parameters, "PARAMETER_SPECS", specs)
    assert reference.parameters_yaml() != reference.PARAMS_YAML.read_text()
    assert len(reference.differences()) == 3  # yaml, README, docs/reference.md


def test_generated_yaml_loads_to_the_defaults():
    from lsm_ros.parameters import LsmSettings, settings_from_values

    doc = yaml.safe_load(reference.parameters_yaml())
    assert settings_from_values(doc["/**/lsm_node"]["ros__parameters"]) == LsmSettings()


def test_every_declared_interface_type_exists():
    from lsm_ros.interfaces import PUBLISHED, SERVICES, SUBSCRIBED

    for e in PUBLISHED + SERVICES + SUBSCRIBED:
        if e.type.startswith("tf2_msgs/"):
            continue  # not on PyPI; tf2_ros brings it where it is installed
        assert e.message_class().__name__ == e.type.rsplit("/", 1)[1]
