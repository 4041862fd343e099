"""The dataset card (README.md) pushed with a dataset: LeRobot's card data (the ``LeRobot`` tag,
``task_categories: robotics``, the ``data/*/*.parquet`` config the Hub's viewer reads) and its sections,
with meta/info.json shown under "Dataset Structure"."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from dexloop.errors import DatasetError

from .info import DatasetInfo


def dataset_card(
    info: DatasetInfo, tags: list[str] | None = None, license: str | None = "apache-2.0", **card_kwargs: Any
) -> str:
    """The card's text; ``card_kwargs`` fill the template's fields (``repo_id``, ``dataset_description``,
    ``url``, ``paper``, ``citation_bibtex``) as in LeRobot's create_lerobot_dataset_card."""
    try:
        from huggingface_hub import DatasetCard, DatasetCardData
    except ImportError as error:  # pragma: no cover - huggingface_hub is a dependency
        raise DatasetError(f"writing a dataset card needs huggingface_hub ({error})") from error
    structure = f"[meta/info.json](meta/info.json):\n```json\n{json.dumps(info.to_dict(), indent=4)}\n```\n"
    data = DatasetCardData(
        license=license,
        tags=["LeRobot", *(tags or [])],
        task_categories=["robotics"],
        configs=[{"config_name": "default", "data_files": "data/*/*.parquet"}],
    )
    template = resources.files("dexloop.datasets").joinpath("card_template.md").read_text()
    try:
        card = DatasetCard.from_template(
            card_data=data,
            template_str=template,
            license=license,
            dataset_structure=structure,
            codebase_version=info.codebase_version,
            **card_kwargs,
        )
    except ImportError as error:
        raise DatasetError(f"writing a dataset card needs jinja2 ({error})") from error
    return str(card)
