"""Prefect's standard block tests for each block in ``blocks/``: descriptions on the
block and on every field (ending with a period), a code example that imports and
loads the block.

Two of the standard tests cannot apply here and are skipped with their reason: the
project publishes no documentation site or logo for its blocks (their manual is
docs/architecture.md, "Blocks"), and the logo test downloads the image.
"""

from __future__ import annotations

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from blocks import ContactCenterDatabase, SftpServer


class _OurBlocks(BlockStandardTestSuite):
    def test_has_a_documentation_url(self, block: type[Block]) -> None:
        pytest.skip("no published documentation site: the blocks' manual is in docs/")

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        pytest.skip("no logo, and the standard test downloads it from the internet")


class TestSftpServer(_OurBlocks):
    @pytest.fixture
    def block(self) -> type[Block]:
        return SftpServer


class TestContactCenterDatabase(_OurBlocks):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ContactCenterDatabase
