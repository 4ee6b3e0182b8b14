"""Shared fixtures: one Mitsuba variant per test session (LLVM by default)."""
import os

import pytest

import rvs_mi
from rvs_mi import scenes


@pytest.fixture(scope="session", autouse=True)
def variant():
    return rvs_mi.init(os.environ.get("RVS_MI_VARIANT", "llvm_ad_rgb"))


@pytest.fixture(scope="session")
def cbox_path():
    return scenes.path("cbox.xml")
