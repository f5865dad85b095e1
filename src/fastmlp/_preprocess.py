"""The command line's preprocessing: what `fastmlp train` learns from a table's columns
before the network sees them, kept in the model file and applied again by `predict`,
`evaluate` (and, converted, by the ONNX export).

The steps, in order, on a pandas DataFrame of the CSV file's raw columns:

1. date columns (text that parses as dates in one format) become numeric parts
   (``<column>_year``, ``_month``, ``_day``, ``_weekday``, and ``_hour``, ``_minute``,
   ``_second`` when the times are not all midnight); a cell that does not parse is missing;
2. a scikit-learn ``ColumnTransformer`` (``verbose_feature_names_out=False``, no remainder):
   ``"numeric"``: ``Pipeline([SimpleImputer(strategy="median"), StandardScaler()])`` on the
   numeric columns (date parts included) as float64, NaN for a missing cell;
   ``"categorical"``: ``Pipeline([SimpleImputer(missing_values="", strategy="most_frequent"),
   OneHotEncoder(handle_unknown="ignore", sparse_output=False)])`` on the text columns as
   Python strings (object dtype), the empty string for a missing cell (as skl2onnx wants
   it: a string tensor cannot hold NaN). A step is left out of its pipeline
   when the user turned it off (``--no-impute``, ``--no-scale``), a pipeline when it has no
   columns. Its output (numeric features first, then the one-hot columns) is the network's
   input.
3. a regression target is standardized (``StandardScaler`` on the target columns) and the
   network's outputs mapped back (``value * scale + mean``).

The record (``metadata["preprocessing"]`` of the model file: JSON, no pickle; floats are
written with ``repr`` and read back bit for bit)::

    {"format": 1,
     "impute":    true unless --no-impute (then a missing cell is refused at predict too),
     "scale":     true unless --no-scale,
     "columns":   [raw input columns the model reads, in the CSV's order],
     "dates":     [{"column": c, "format": strftime format, "parts": [part names]}],
     "numeric":   null | {"columns": [names after the date step],
                          "imputer": null | {"strategy": "median", "statistics": [floats]},
                          "scaler":  null | {"mean": [...], "scale": [...], "var": [...],
                                             "n_samples_seen": int}},
     "categorical": null | {"columns": [...],
                          "imputer": null | {"strategy": "most_frequent", "missing_values": "",
                                             "statistics": [strings]},
                          "encoder": {"categories": [[strings, sorted], ...], "handle_unknown": "ignore"}},
     "left_out":  [{"column": c, "reason": "id" | "empty"}],
     "target":    {"columns": [...], "scaler": null | {same keys as above}}}

`Preprocessing.column_transformer` is the fitted ColumnTransformer rebuilt from the record
(its transformers fitted on a few synthetic rows holding every category, then given the
recorded arrays), so a loaded model transforms exactly as the trained one.
"""

import re
import warnings

import numpy as np

FORMAT = 1
MANY_CATEGORIES = 100       # a text column with more categories than this gets a notice
DATE_PARTS = ("year", "month", "day", "weekday")
TIME_PARTS = ("hour", "minute", "second")
_ID_WORDS = re.compile(r"(^|[^a-z])(id|key|uuid|guid|index|no)$", re.IGNORECASE)     # "id", "customer_id"
_ID_CAMEL = re.compile(r"[a-z](Id|ID)$")                                                  # "customerId"


def looks_like_id_name(name):
    """True for column names such as "id", "customer_id", "row index", "customerId"."""
    name = str(name).strip()
    return bool(_ID_WORDS.search(name) or _ID_CAMEL.search(name))


class PreprocessingError(ValueError):
    """A column the preprocessing cannot use, with a one-line message naming it."""


def _line(index):
    return int(index) + 2


# ================================================================== deciding what each column is


def plan(frame, columns, *, path, include=(), impute=True):
    """How the columns `columns` of `frame` become features: a dict with "numeric", "text",
    "dates" ({column: format}), "left_out" ([(column, reason)]) and "notices" (lines to print).
    PreprocessingError for a column that cannot be used."""
    import pandas as pd

    numeric, text, dates, left_out, notices = [], [], {}, [], []
    n_rows = len(frame)
    for name in columns:
        values = frame[name]
        present = values.dropna()
        if present.empty:
            left_out.append((name, "empty"))
            notices.append(f"column {name!r} has no values: left out")
            continue
        if not impute and len(present) < n_rows:
            missing = np.flatnonzero(values.isna().to_numpy())
            raise PreprocessingError(
                f"column {name!r} of {path} has {len(missing)} empty value(s), the first on line "
                f"{_line(missing[0])} (--no-impute refuses them; without it they are filled in)")
        unique_per_row = len(present) == n_rows and present.nunique() == n_rows and n_rows >= 10
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            integers = pd.api.types.is_integer_dtype(values)
            if (name not in include and integers and unique_per_row
                    and (looks_like_id_name(name) or present.max() - present.min() == n_rows - 1)):
                left_out.append((name, "id"))
                notices.append(f"column {name!r} looks like an ID (a different whole number on every row): "
                               f"left out (--include {name} to use it)")
                continue
            numeric.append(name)
            continue
        strings = present.astype(str)
        as_numbers = pd.to_numeric(strings, errors="coerce")
        comma = strings.str.contains(",", regex=False)
        if comma.any() and pd.to_numeric(strings.str.replace(",", ".", regex=False), errors="coerce").notna().all():
            first = strings[comma].iloc[0]
            raise PreprocessingError(f"column {name!r} of {path} holds numbers with a decimal comma ({first!r}): "
                                     "give --decimal ,")
        if as_numbers.notna().mean() > 0.5:        # numbers with a few that are not
            bad = as_numbers.isna().to_numpy().nonzero()[0][0]
            raise PreprocessingError(
                f"column {name!r} of {path} holds numbers but line {_line(present.index[bad])} holds "
                f"{strings.iloc[bad]!r}: correct it, leave it empty, or --drop {name}")
        fmt = date_format(strings)
        if fmt is not None:
            dates[name] = fmt
            continue
        if _looks_like_dates(strings):
            raise PreprocessingError(
                f"column {name!r} of {path} holds dates in no single format ({strings.iloc[0]!r}): write them as "
                f"YYYY-MM-DD, or --drop {name}")
        if unique_per_row and name not in include:
            left_out.append((name, "id"))
            notices.append(f"column {name!r} looks like an ID (a different text on every row): left out "
                           f"(--include {name} to use it)")
            continue
        text.append(name)
        if present.nunique() > MANY_CATEGORIES:
            notices.append(f"column {name!r} holds {present.nunique()} different texts: one-hot encoded into as "
                           f"many inputs (--drop {name} to leave it out)")
    return {"numeric": numeric, "text": text, "dates": dates, "left_out": left_out, "notices": notices}


def _looks_like_dates(strings):
    return bool(strings.str.fullmatch(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T].*)?").mean() > 0.5)


def date_format(strings):
    """The one strftime format every value of `strings` (text) parses with, or None."""
    import pandas as pd
    from pandas.tseries.api import guess_datetime_format

    if not _looks_like_dates(strings):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fmt = guess_datetime_format(strings.iloc[0])
    if fmt is None:
        return None
    parsed = pd.to_datetime(strings, format=fmt, errors="coerce")
    return fmt if parsed.notna().all() else None


def date_parts(values, fmt, parts):
    """{<column>_<part>: float64 array} of the text column `values` read with `fmt`."""
    import pandas as pd

    when = pd.to_datetime(values.astype("string"), format=fmt, errors="coerce")
    return {f"{values.name}_{part}": getattr(when.dt, _ATTRIBUTE.get(part, part)).astype("float64").to_numpy()
            for part in parts}


_ATTRIBUTE = {"weekday": "day_of_week"}      # (pandas' names of the parts, where they differ)


# ================================================================== fitting and applying


class Preprocessing:
    """The fitted steps of the module docstring. `record` is their JSON form."""

    def __init__(self, record):
        self.record = record
        self.column_transformer = _rebuild(record)
        target = record["target"]["scaler"]
        self.target_scaler = None if target is None else _scaler(target, len(record["target"]["columns"]))

    # -------------------------------------------------------------- features

    def frame(self, frame, path="the data", impute=None):
        """The DataFrame the ColumnTransformer reads, from the raw columns of `frame`."""
        import pandas as pd

        record = self.record
        impute = record["impute"] if impute is None else impute
        columns = {}
        dates = {d["column"]: d for d in record["dates"]}
        for name in record["columns"]:
            values = frame[name]
            if not impute:
                missing = np.flatnonzero(values.isna().to_numpy())
                if missing.size:
                    raise PreprocessingError(f"column {name!r} of {path} has {missing.size} empty value(s), the "
                                             f"first on line {_line(missing[0])} (the model fills in none)")
            if name in dates:
                parts = date_parts(values, dates[name]["format"], dates[name]["parts"])
                if not impute:
                    for part in parts.values():
                        if np.isnan(part).any():
                            bad = np.flatnonzero(np.isnan(part))[0]
                            raise PreprocessingError(f"column {name!r} of {path} holds {values.iloc[bad]!r} on "
                                                     f"line {_line(bad)}, not a date like {dates[name]['format']}")
                columns.update(parts)
            elif record["categorical"] is not None and name in record["categorical"]["columns"]:
                columns[name] = ["" if pd.isna(v) else v if isinstance(v, str) else str(v) for v in values]
            else:
                if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
                    as_numbers = pd.to_numeric(values, errors="coerce")
                    bad = np.flatnonzero(as_numbers.isna().to_numpy() & values.notna().to_numpy())
                    if bad.size:
                        raise PreprocessingError(f"column {name!r} of {path} is not numeric (line {_line(bad[0])}: "
                                                 f"{values.iloc[bad[0]]!r}); the model reads numbers there")
                    values = as_numbers
                columns[name] = values.astype("float64").to_numpy()
        out = pd.DataFrame(columns, index=frame.index)
        if record["categorical"] is not None:
            for name in record["categorical"]["columns"]:
                out[name] = out[name].astype(object)
        return out

    def transform(self, frame, path="the data"):
        """The network's input (float64 array) for the raw columns of `frame`."""
        inputs = self.frame(frame, path)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Found unknown categories")
            return np.asarray(self.column_transformer.transform(inputs), dtype=np.float64)

    @property
    def feature_names(self):
        return [str(name) for name in self.column_transformer.get_feature_names_out()]

    # -------------------------------------------------------------- targets

    def scale_target(self, y):
        """The target array `y` (n, k) or (n,) as the network learns it."""
        if self.target_scaler is None:
            return y
        two_d = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        out = self.target_scaler.transform(two_d)
        return out if np.ndim(y) == 2 else out[:, 0]

    def unscale_target(self, predicted):
        if self.target_scaler is None:
            return predicted
        two_d = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
        out = self.target_scaler.inverse_transform(two_d)
        return out if np.ndim(predicted) == 2 else out[:, 0]

    # -------------------------------------------------------------- info

    def describe(self):
        """[(column, what it became)] for `info`."""
        record, lines = self.record, []
        numeric = record["numeric"] or {"columns": [], "imputer": None, "scaler": None}
        steps = [s for s, on in (("median-imputed", numeric["imputer"]), ("standardized", numeric["scaler"])) if on]
        numeric_what = "number" + (f", {' and '.join(steps)}" if steps else ", as is")
        dates = {d["column"]: d for d in record["dates"]}
        categorical = record["categorical"]
        for name in record["columns"]:
            if name in dates:
                parts = ", ".join(dates[name]["parts"])
                lines.append((name, f"date ({dates[name]['format']}) -> {parts}; each {numeric_what}"))
            elif categorical is not None and name in categorical["columns"]:
                k = categorical["columns"].index(name)
                categories = categorical["encoder"]["categories"][k]
                filled = ", most frequent imputed" if categorical["imputer"] else ""
                shown = ", ".join(categories[:6]) + (", ..." if len(categories) > 6 else "")
                lines.append((name, f"text -> one-hot, {len(categories)} categories ({shown}){filled}"))
            else:
                lines.append((name, numeric_what))
        for item in record["left_out"]:
            lines.append((item["column"], "left out (" + {"id": "looks like an ID", "empty": "no values"}[
                item["reason"]] + ")"))
        target = record["target"]
        if target["scaler"] is not None:
            for name in target["columns"]:
                lines.append((name, "target, standardized for training (predictions mapped back)"))
        return lines


def fit(frame, columns_plan, columns, targets, y, *, scale=True, impute=True, scale_target=False):
    """A fitted Preprocessing for the raw `columns` of `frame` as `columns_plan` (from `plan`)
    says, and the target values `y` (n, k) (standardized when `scale_target`)."""
    dates = [{"column": name, "format": fmt, "parts": _parts(frame[name], fmt)}
             for name, fmt in columns_plan["dates"].items()]
    used = [name for name in columns if name not in dict(columns_plan["left_out"])]
    record = {
        "format": FORMAT, "impute": bool(impute), "scale": bool(scale), "columns": used, "dates": dates,
        "numeric": None, "categorical": None,
        "left_out": [{"column": name, "reason": reason} for name, reason in columns_plan["left_out"]],
        "target": {"columns": list(targets), "scaler": None},
    }
    numeric_columns = []
    for name in used:
        if name in columns_plan["dates"]:
            numeric_columns += [f"{name}_{part}" for part in next(d for d in dates if d["column"] == name)["parts"]]
        elif name in columns_plan["numeric"]:
            numeric_columns.append(name)
    text_columns = [name for name in used if name in columns_plan["text"]]
    if numeric_columns:
        record["numeric"] = {"columns": numeric_columns, "imputer": {"strategy": "median", "statistics": []}
                             if impute else None, "scaler": {} if scale else None}
    if text_columns:
        record["categorical"] = {"columns": text_columns,
                                 "imputer": {"strategy": "most_frequent", "missing_values": "", "statistics": []}
                                 if impute else None,
                                 "encoder": {"categories": [], "handle_unknown": "ignore"}}
    # fit the real transformers on the data, then keep their arrays
    skeleton = Preprocessing.__new__(Preprocessing)
    skeleton.record = record
    inputs = skeleton.frame(frame, impute=impute)
    transformer = _column_transformer(record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        transformer.fit(inputs)
    _record_arrays(record, transformer)
    if scale_target:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(np.asarray(y, dtype=np.float64).reshape(len(y), -1))
        record["target"]["scaler"] = _scaler_record(scaler)
    return Preprocessing(record)


def _parts(values, fmt):
    import pandas as pd

    when = pd.to_datetime(values.astype("string"), format=fmt, errors="coerce").dropna()
    has_time = bool(((when.dt.hour != 0) | (when.dt.minute != 0) | (when.dt.second != 0)).any())
    return list(DATE_PARTS + (TIME_PARTS if has_time else ()))


def _column_transformer(record):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    numeric, categorical = record["numeric"], record["categorical"]
    if numeric is not None:
        steps = []
        if numeric["imputer"] is not None:
            steps.append(("impute", SimpleImputer(strategy="median")))
        if numeric["scaler"] is not None:
            steps.append(("scale", StandardScaler()))
        parts.append(("numeric", Pipeline(steps) if steps else "passthrough", list(numeric["columns"])))
    if categorical is not None:
        steps = []
        if categorical["imputer"] is not None:
            steps.append(("impute", SimpleImputer(missing_values="", strategy="most_frequent")))
        steps.append(("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)))
        parts.append(("categorical", Pipeline(steps), list(categorical["columns"])))
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)


def _step(transformer, group, name):
    from sklearn.pipeline import Pipeline

    pipeline = transformer.named_transformers_[group]
    return pipeline.named_steps.get(name) if isinstance(pipeline, Pipeline) else None


def _record_arrays(record, transformer):
    """Copy the fitted arrays of `transformer` into `record`."""
    if record["numeric"] is not None:
        imputer, scaler = _step(transformer, "numeric", "impute"), _step(transformer, "numeric", "scale")
        if imputer is not None:
            record["numeric"]["imputer"]["statistics"] = [float(v) for v in imputer.statistics_]
        if scaler is not None:
            record["numeric"]["scaler"] = _scaler_record(scaler)
    if record["categorical"] is not None:
        imputer, encoder = _step(transformer, "categorical", "impute"), _step(transformer, "categorical", "encode")
        if imputer is not None:
            record["categorical"]["imputer"]["statistics"] = [str(v) for v in imputer.statistics_]
        record["categorical"]["encoder"]["categories"] = [[str(v) for v in c] for c in encoder.categories_]


def _scaler_record(scaler):
    return {"mean": [float(v) for v in scaler.mean_], "scale": [float(v) for v in scaler.scale_],
            "var": [float(v) for v in scaler.var_], "n_samples_seen": int(np.max(scaler.n_samples_seen_))}


def _scaler(record, n):
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    scaler.mean_ = _floats(record["mean"], n, "mean")
    scaler.scale_ = _floats(record["scale"], n, "scale")
    scaler.var_ = _floats(record["var"], n, "var")
    if not np.all(scaler.scale_ > 0):
        raise ValueError("preprocessing: a scaler's scale is not > 0")
    scaler.n_samples_seen_ = int(record["n_samples_seen"])
    scaler.n_features_in_ = n
    return scaler


def _floats(values, n, what):
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,) or not np.all(np.isfinite(array)):
        raise ValueError(f"preprocessing: {what} is not {n} finite numbers")
    return array


def _rebuild(record):
    """The fitted ColumnTransformer of `record` (see the module docstring)."""
    import pandas as pd

    transformer = _column_transformer(record)
    numeric, categorical = record["numeric"], record["categorical"]
    n_rows = max([1] + [len(c) for c in (categorical or {"encoder": {"categories": []}})["encoder"]["categories"]])
    synthetic = {}
    if numeric is not None:
        for name in numeric["columns"]:
            synthetic[name] = np.arange(n_rows, dtype=np.float64) + 1.0
    if categorical is not None:
        for name, categories in zip(categorical["columns"], categorical["encoder"]["categories"]):
            if not categories or not all(isinstance(c, str) for c in categories) or sorted(set(categories)) != categories:
                raise ValueError(f"preprocessing: the categories of {name!r} are not sorted unique strings")
            synthetic[name] = np.array([categories[i % len(categories)] for i in range(n_rows)], dtype=object)
    frame = pd.DataFrame(synthetic, columns=[*(numeric or {"columns": []})["columns"],
                                            *(categorical or {"columns": []})["columns"]])
    transformer.fit(frame)
    if numeric is not None:
        n = len(numeric["columns"])
        imputer, scaler = _step(transformer, "numeric", "impute"), _step(transformer, "numeric", "scale")
        if imputer is not None:
            imputer.statistics_ = _floats(numeric["imputer"]["statistics"], n, "numeric statistics")
        if scaler is not None:
            fitted = _scaler(numeric["scaler"], n)
            for key in ("mean_", "scale_", "var_", "n_samples_seen_"):
                setattr(scaler, key, getattr(fitted, key))
    if categorical is not None:
        imputer = _step(transformer, "categorical", "impute")
        if imputer is not None:
            statistics = categorical["imputer"]["statistics"]
            if len(statistics) != len(categorical["columns"]) or not all(isinstance(s, str) for s in statistics):
                raise ValueError("preprocessing: the categorical statistics are not one string per column")
            imputer.statistics_ = np.array(statistics, dtype=object)
    return transformer
