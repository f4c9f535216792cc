"""The table-row modality: a row of named cells, stored as canonical JSON (see :mod:`dyntrain.codecs.tables`)."""

from __future__ import annotations

from typing import Any

from .base import Modality

__all__ = ["RowModality", "table_columns"]


def _candidates(contract: str) -> tuple:
    """Cheap first; the first three always run. The linear models are the plain baselines the
    trees must beat (see benchmarks/tabular_accuracy.py). The regression trees keep their 20-row
    leaves even on tiny data: smaller leaves won cross-validation on 20-50 rows by noise and then
    lost on the test set (benchmarks/tabular_accuracy.py, --quick), while unsplit trees simply lose
    selection to the linear model."""
    from ..learners.candidates import Candidate

    if contract == "regressor":
        return (Candidate("tabular.ridge", {"alpha": 1.0}), Candidate("tabular.hgb_regressor", {}),
                Candidate("tabular.ridge", {"alpha": 10.0}),
                Candidate("tabular.hgb_regressor", {"loss": "absolute_error"}))
    return (Candidate("tabular.linear", {"C": 1.0}), Candidate("tabular.hgb", {}),
            Candidate("tabular.linear", {"C": 0.1}),
            Candidate("tabular.hgb", {"learning_rate": 0.1, "max_leaf_nodes": 16, "min_samples_leaf": 10}))


class RowModality(Modality):
    kind = noun = "row"
    plural = "rows"
    title = "Table rows (a CSV file)"
    upload_format = "rows"
    training_curves = False
    data_template = "_table_data.html"
    add_template = "_add_rows.html"
    help_template = "_help_rows.html"
    data_scripts = ("table.js",)
    try_template = "_try_rows.html"
    try_script = "table.js"
    shows_text = True

    def upload_limit(self, settings) -> tuple[int, str, str]:
        # Rows are small and counted against the row limit (a CSV upload is one file of many rows).
        return settings.max_csv_rows, "max_csv_rows", "rows"

    def canonical(self, data: bytes) -> bytes:
        # The same row always has the same bytes, so the same hash and holdout side.
        from ..codecs.tables import row_bytes

        return row_bytes(self.decode(data))

    def content_meta(self, settings, filename: str, data: bytes) -> dict[str, Any]:
        from ..codecs.tables import row_preview

        row = self.decode(data)
        return {"filename": filename, "columns": len(row), "preview": row_preview(row)}

    def decode(self, data: bytes, *, max_pixels: int = 40_000_000) -> dict:
        from ..codecs.tables import decode_row

        return decode_row(data)

    def media_type(self, data: bytes) -> str:
        return "application/json"

    def example(self) -> bytes:
        return b"{}"

    def warmup_item(self) -> dict:
        return {}

    def columns(self, session) -> tuple:
        # the file itself says what it takes, so serving never depends on a card being in step
        from ..serving.inputs import table_schema

        return tuple(table_schema(session))

    def feed(self, input_names: list[str], columns, items: list) -> dict[str, Any]:
        from ..codecs.table_features import row_feed

        return row_feed(list(columns), items)

    def item_problems(self, columns, index: int, item: dict) -> list[dict[str, Any]]:
        """Unknown and missing columns of one row; a bad value in a numeric column raises."""
        from ..codecs.tables import check_row

        known = [c["name"] for c in columns or ()]
        problems = [{"row": index + 1, "column": k, "reason": f"unknown column {k!r}"} for k in item if k not in known]
        problems += [{"row": index + 1, "column": k, "reason": f"missing column {k!r} (send null for a missing value)"}
                     for k in known if k not in item]
        if not problems:
            check_row(columns or (), item)
        return problems

    def candidates(self, target, n_samples: int, n_classes: int, time_budget_s: float) -> list:
        return list(_candidates(target.contract))

    def features(self, kinds, hashes, load_blob, extractor, progress=None) -> dict[str, Any]:
        """The ``table.rows`` array of stored rows; each column's type is inferred from all of them.

        Reading rows is cheap (small JSON blobs), so nothing is cached."""
        from ..codecs.table_features import infer_schema, to_matrix

        rows = []
        for k, h in enumerate(hashes):
            rows.append(self.decode(load_blob(h)))
            if progress is not None and k % 500 == 0:
                progress(k / max(1, len(hashes)))
        X = to_matrix(rows, infer_schema(rows))
        if progress is not None:
            progress(1.0)
        return {kind: X for kind in kinds}

    def input_contract(self, onnx_path) -> dict[str, Any]:
        import onnx

        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        columns = [{"name": i.name, "type": "numeric" if i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
                    else "categorical"} for i in graph.input]
        return {"preprocessing": "none (imputation, scaling and one-hot encoding inside the graph)",
                "input": {"name": [i.name for i in graph.input], "columns": columns,
                          "dtype": {"numeric": "float32 [N, 1] (NaN = missing)", "categorical": "string [N, 1]"}}}

    def external_input(self, model, task: str) -> str:
        from ..kernel.errors import Invalid

        raise Invalid(f"uploading models trained elsewhere is not supported for {task} projects yet; "
                      "add the rows and let the platform train")

    def rows(self, blobs, hashes: list[str]) -> dict[str, dict]:
        """Stored rows by content hash; an unreadable one is left out (shown as "not available")."""
        out = {}
        for h in dict.fromkeys(hashes):
            if blobs.exists(h):
                try:
                    out[h] = self.decode(blobs.get(h))
                except Exception:  # a broken blob never breaks a page
                    continue
        return out

    def data_view(self, blobs, samples: list, shown: int = 300) -> dict[str, Any]:
        """One table of the newest ``shown`` rows with their cells instead of a card per class."""
        newest = sorted(samples, key=lambda s: -s.id)[:shown]
        cells = self.rows(blobs, [s.content_hash for s in newest])
        columns, n_columns = table_columns([cells[s.content_hash] for s in newest if s.content_hash in cells],
                                           orders=[(s.meta or {}).get("order") or () for s in newest])
        return {"table_rows": [(s, cells.get(s.content_hash) or {}) for s in newest], "columns": columns,
                "n_columns": n_columns, "shown_rows": shown}

    def previews(self, blobs, hashes: list[str]) -> dict[str, str]:
        from ..codecs.tables import row_preview

        return {h: row_preview(row, 300) for h, row in self.rows(blobs, hashes).items()}


def table_columns(rows: list[dict[str, Any]], limit: int = 40, orders=()) -> tuple[list[str], int]:
    """The columns to show (first ``limit``) and how many there are: in the order the rows were
    sent (``orders``: each row's column names as sent, see changes.add_rows), then first-seen
    (stored rows have sorted keys).

    >>> table_columns([{"a": "1"}, {"b": "2", "a": "3"}])
    (['a', 'b'], 2)
    >>> table_columns([{"a": "1", "z": "2"}], orders=[["z", "a"]])
    (['z', 'a'], 2)
    """
    seen = {name for row in rows for name in row}
    names: dict[str, None] = {}
    for order in orders:
        names.update(dict.fromkeys(n for n in order if n in seen))
    for row in rows:
        names.update(dict.fromkeys(row))
    return list(names)[:limit], len(names)
