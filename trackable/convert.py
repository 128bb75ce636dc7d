"""Copy counters from an existing model into a trackable data model (manage.py convert_tracking_data).

Two modes. "add" (the default) adds the source's counts to whatever the data model holds, with
`n = n + delta` upserts, chunk by chunk; each chunk of source rows (positions in the `order_by` order)
is recorded in the import ledger in the same transaction, so running the same conversion again skips
what was already added. "replace" sums the whole source first, then sets each mapped counter of each
row it touches to that sum (other counters and untouched rows stay as they are); it needs no ledger
because running it twice gives the same rows.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any, cast

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import connections, models, router, transaction
from django.utils import timezone as dj_timezone

from trackable.exceptions import TrackableError
from trackable.importing import ChunkWriter, ImportStats, KeyMaker, Progress
from trackable.models import TrackableTimeSeriesData, counter_fields
from trackable.sites import site
from trackable.upsert import upsert_increments

__all__ = ["ConversionError", "Conversion", "parse_pairs", "parse_match_spec"]

ADD, REPLACE = "add", "replace"
COUNT_ROWS = "1"  # a source "field" that counts each source row once


class ConversionError(TrackableError, ValueError):
    """A conversion option names something that does not exist or does not fit."""


def parse_pairs(text: str, option: str) -> dict[str, str]:
    """Return {source: dest} from 'a:b,c:d'; raise ConversionError on any other shape."""
    pairs = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        src, sep, dest = item.partition(":")
        if not sep or not src or not dest or ":" in dest:
            raise ConversionError(f"{option} takes source:dest pairs separated by commas (e.g. hits:impressions); got {item!r}.")
        pairs[src.strip()] = dest.strip()
    if not pairs:
        raise ConversionError(f"{option} is empty; give source:dest pairs separated by commas (e.g. hits:impressions).")
    return pairs


def parse_match_spec(spec: str) -> tuple[str, type[models.Model], str]:
    """Return (source path, parent model, parent attribute) from 'source_attr:app_label.Model[:parent_attr]'."""
    from django.apps import apps

    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConversionError(f"--match-spec takes source_attr:app_label.Model[:parent_attr]; got {spec!r}.")
    try:
        model = apps.get_model(parts[1])
    except (LookupError, ValueError) as err:
        raise ConversionError(f"Unknown model {parts[1]!r} in --match-spec: name it as app_label.ModelName.") from err
    attr = parts[2] if len(parts) == 3 else parts[0].split(".")[-1]
    try:
        model._meta.get_field(attr)
    except FieldDoesNotExist as err:
        raise ConversionError(f"{model.__name__} has no field {attr!r} (in --match-spec {spec!r}).") from err
    return parts[0], model, attr


def _walk(model: type[models.Model], dotted: str, option: str) -> tuple[str, Any]:
    """Return (ORM lookup path, final field) of a dotted attribute path, following foreign keys."""
    parts = dotted.replace("__", ".").split(".")
    current = model
    for i, part in enumerate(parts):
        try:
            f = current._meta.get_field(part)
        except FieldDoesNotExist as err:
            raise ConversionError(f"{current.__name__} has no field {part!r} (in {option} {dotted!r}).") from err
        if i < len(parts) - 1:
            if not (f.many_to_one or f.one_to_one) or isinstance(f, GenericForeignKey):
                raise ConversionError(f"{current.__name__}.{part} is not a foreign key, so {option} {dotted!r} cannot follow it.")
            current = cast("type[models.Model]", f.related_model)  # a foreign key's model, never None or "self"
    return "__".join(parts), f


@dataclass
class Conversion:
    """One conversion: where the counts come from and where they go."""

    source: type[models.Model]
    dest: type[models.Model]
    fields: dict[str, str]
    link_field: str | None = None
    match_spec: str | None = None
    bucket_field: str | None = None
    order_by: list[str] = field(default_factory=list)
    max_records: int | None = None
    mode: str = ADD

    def __post_init__(self) -> None:
        self._check_dest()
        self.parent_model: type[models.Model] | None = None  # None: read per row from the content type
        self.columns: dict[str, str] = {}  # source lookup -> dest counter
        for src, dest in self.fields.items():
            if dest not in counter_fields(self.dest):
                names = ", ".join(counter_fields(self.dest))
                raise ConversionError(
                    f"{dest!r} is not a counter field of {self.dest.__name__}; its counter fields are: {names}."
                )
            self.columns[src if src == COUNT_ROWS else _walk(self.source, src, "--update-fields")[0]] = dest
        self._check_parent()
        self._check_bucket()
        if self.max_records is not None and self.max_records < 1:
            raise ConversionError(f"--max-records must be a positive number of rows, not {self.max_records}.")
        try:
            str(self.queryset().query)
        except FieldError as err:
            raise ConversionError(f"--order-by {','.join(self.order_by)!r} does not fit {self.source.__name__}: {err}") from err
        self.keys = KeyMaker()

    def _check_dest(self) -> None:
        if self.dest not in site.data_models():
            known = ", ".join(sorted(dm._meta.label for dm in site.data_models())) or "none"
            raise ConversionError(
                f"{self.dest._meta.label} is not a registered trackable data model; registered data models: {known}."
            )

    def _check_parent(self) -> None:
        if bool(self.link_field) == bool(self.match_spec):
            if self.link_field:
                raise ConversionError("Give either --link-field or --match-spec, not both.")
            raise ConversionError(
                "Give --link-field (the path from a source row to its parent object, e.g. page or hit.page) or "
                "--match-spec (source_attr:app_label.Model[:parent_attr]) to say how a source row finds its parent."
            )
        if self.match_spec:
            path, self.parent_model, self.parent_attr = parse_match_spec(self.match_spec)
            self.parent_cols = [_walk(self.source, path, "--match-spec")[0]]
            self._check_registered(self.parent_model)
            return
        lookup, final = _walk(self.source, cast(str, self.link_field), "--link-field")
        if isinstance(final, GenericForeignKey):
            prefix = lookup.rpartition("__")[0]
            prefix = prefix + "__" if prefix else ""
            self.parent_model = None  # read per row from the content type
            self.parent_cols = [prefix + final.ct_field, prefix + final.fk_field]
        elif final.many_to_one or final.one_to_one:
            self.parent_model = final.related_model
            self.parent_cols = [lookup]
            self._check_registered(self.parent_model)
        else:
            raise ConversionError(
                f"--link-field {self.link_field!r} ends at {final.model.__name__}.{final.name}, which is not a "
                "foreign key or generic foreign key to a parent object."
            )

    def _check_registered(self, parent: type[models.Model]) -> None:
        if not site.is_registered(parent, self.dest):
            raise ConversionError(
                f"{parent.__name__} is not registered with {self.dest.__name__}; register it in trackables.py "
                f"or convert into a data model of {parent.__name__}."
            )

    def _check_bucket(self) -> None:
        timed = issubclass(self.dest, TrackableTimeSeriesData)
        if timed and not self.bucket_field:
            raise ConversionError(
                f"{self.dest.__name__} keeps a time series; give --bucket-field naming the date or datetime field of "
                f"{self.source.__name__} that says when the counts happened."
            )
        if not timed and self.bucket_field:
            raise ConversionError(f"{self.dest.__name__} keeps no time series, so --bucket-field does not apply; leave it out.")
        self.bucket_col = None
        if self.bucket_field:
            self.bucket_col, final = _walk(self.source, self.bucket_field, "--bucket-field")
            kind = final.get_internal_type()
            if kind not in {"DateField", "DateTimeField"}:
                raise ConversionError(f"--bucket-field {self.bucket_field!r} is a {kind}, not a DateField or DateTimeField.")

    # -- reading ---------------------------------------------------------------------------------
    def identity(self) -> str:
        """Return the ledger name of this conversion: the same options give the same name."""
        spec = [self.source._meta.label, self.dest._meta.label, sorted(self.columns.items()), self.parent_cols,
                self.match_spec, self.bucket_col, self.order_by]
        return "convert:" + hashlib.sha256(json.dumps(spec, default=str).encode()).hexdigest()[:48]

    def queryset(self) -> models.QuerySet:
        """Return the ordered source queryset."""
        return self.source._default_manager.order_by(*self.order_by, "pk")

    def total(self) -> int:
        """Return how many source rows the conversion reads."""
        n = self.queryset().count()
        return min(n, self.max_records) if self.max_records else n

    def _values(self) -> list[str]:
        cols = self.parent_cols + ([self.bucket_col] if self.bucket_col else [])
        return cols + [c for c in self.columns if c != COUNT_ROWS]

    def chunks(self, size: int, skip: Any = None) -> Iterator[tuple[int, list[tuple]]]:
        """Yield (position of the first row, rows) chunk by chunk, leaving out chunks `skip(start)` rejects."""
        total = self.total()
        qs = self.queryset().values_list(*self._values())
        for start in range(0, total, size):
            if skip is not None and skip(start, min(start + size, total)):
                continue
            yield start, list(qs[start : min(start + size, total)])

    # -- converting --------------------------------------------------------------------------------
    def increments(self, rows: list[tuple], stats: ImportStats) -> Iterator[list]:
        """Yield, for each source row, its increments (an empty list when the row is skipped)."""
        parents = self._parents(rows)
        nparent = len(self.parent_cols)
        for row, parent in zip(rows, parents, strict=False):
            if isinstance(parent, str):
                stats.skipped[parent] += 1
                yield []
                continue
            moment = row[nparent] if self.bucket_col else None
            if self.bucket_col and moment is None:
                stats.skipped[f"{self.bucket_field} is empty"] += 1
                yield []
                continue
            ts_ms = self._ts_ms(moment)
            values = iter(row[nparent + (1 if self.bucket_col else 0) :])
            out = []
            for src, dest in self.columns.items():
                amount = 1 if src == COUNT_ROWS else _amount(next(values), src)
                if amount:
                    out.append(self.keys.increment(parent[0], parent[1], dest, ts_ms, amount, self.dest))
            yield out

    def _ts_ms(self, moment: date | datetime | None) -> int:
        if moment is None:
            return 0
        if not isinstance(moment, datetime):  # a date means local midnight in the buckets' zone
            moment = datetime.combine(moment, dtime()).replace(tzinfo=self.keys.zone)
        elif dj_timezone.is_naive(moment):
            moment = moment.replace(tzinfo=self.keys.zone)
        return int(moment.timestamp() * 1000)

    def _parents(self, rows: list[tuple]) -> list[tuple | str]:
        """Return (parent model, pk) per row, or the reason the row has none."""
        if self.match_spec:
            return self._matched_parents(rows)
        if self.parent_model is not None:
            missing = f"{self.link_field} is empty"
            return [(self.parent_model, row[0]) if row[0] is not None else missing for row in rows]
        out: list[tuple | str] = []
        for ct_id, pk, *_ in rows:
            model = ContentType.objects.get_for_id(ct_id).model_class() if ct_id is not None else None
            if model is None or pk is None:
                out.append(f"{self.link_field} is empty")
            elif not site.is_registered(model, self.dest):
                out.append(f"parent {model._meta.label} is not registered with {self.dest._meta.label}")
            else:
                out.append((model, pk))
        return out

    def _matched_parents(self, rows: list[tuple]) -> list[tuple | str]:
        model = self.parent_model
        assert model is not None  # --match-spec names the parent model
        wanted = {row[0] for row in rows if row[0] is not None}
        found: dict[Any, Any] = {}
        query = model._default_manager.filter(**{f"{self.parent_attr}__in": wanted})
        for value, pk in query.values_list(self.parent_attr, "pk"):
            if value in found:
                n = model._default_manager.filter(**{self.parent_attr: value}).count()
                raise ConversionError(
                    f"--match-spec is ambiguous: {n} {model.__name__} rows have {self.parent_attr}={value!r}; "
                    "match on an attribute that is unique."
                )
            found[value] = pk
        missing = f"no {model.__name__} matches --match-spec"
        return [(model, found[row[0]]) if row[0] in found else missing for row in rows]


def _amount(value: Any, src: str) -> int:
    if value is None:
        return 0
    amount = int(value) if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool) else None
    if amount is None or amount != value:
        raise ConversionError(f"Source field {src!r} holds {value!r}, which is not a whole number of events.")
    return amount


def run_add(conv: Conversion, stats: ImportStats, *, chunk_size: int, dry_run: bool, progress: Progress) -> None:
    """Add the source's counts chunk by chunk, skipping chunks an earlier run of it committed."""
    writer = ChunkWriter(conv.identity(), stats, chunk_size=chunk_size, dry_run=dry_run)

    def done(start: int, end: int) -> bool:
        if writer.all_done(start, end):
            stats.lines += end - start
            stats.already += end - start
            return True
        return False

    for start, rows in conv.chunks(chunk_size, done):
        stats.lines += len(rows)
        fresh = [(position, row) for position, row in enumerate(rows, start) if not writer.is_done(position)]
        for (position, _), increments in zip(fresh, conv.increments([row for _, row in fresh], stats), strict=False):
            writer.begin(position)
            for inc in increments:
                writer.add(inc)
        progress.update(stats)
    writer.flush()


def run_replace(conv: Conversion, stats: ImportStats, *, chunk_size: int, dry_run: bool, progress: Progress) -> None:
    """Sum the whole source, then set each mapped counter of each touched row to its sum."""
    stats.dry_run = dry_run
    totals: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _, rows in conv.chunks(chunk_size):
        for increments in conv.increments(rows, stats):
            stats.lines += 1
            for _, key, name, amount in increments:
                totals[key][name] += amount
                stats.events += 1
                stats.amount += amount
        progress.update(stats)
    keys = list(totals)
    db = router.db_for_write(conv.dest)
    mapped = sorted(set(conv.columns.values()))
    for start in range(0, len(keys), chunk_size):
        chunk = {k: totals[k] for k in keys[start : start + chunk_size]}
        stats.chunks += 1
        stats.rows += len(chunk)
        if dry_run:
            continue
        with transaction.atomic(using=db):
            _reset(conv.dest, db, list(chunk), mapped)
            upsert_increments(connections[db], conv.dest, chunk)


def _reset(dest: type[models.Model], db: str, keys: list[tuple], names: list[str]) -> None:
    """Set the counters `names` of the rows at `keys` to zero (rows that do not exist stay absent)."""
    groups: dict[tuple, list] = defaultdict(list)
    for ct_id, object_id, bucket in keys:
        groups[(ct_id, bucket)].append(object_id)
    manager = dest._default_manager.using(db)
    for (ct_id, bucket), ids in groups.items():
        where = {"content_type_id": ct_id}
        if bucket is not None:
            where["collected_during"] = bucket
        for i in range(0, len(ids), 500):
            manager.filter(object_id__in=ids[i : i + 500], **where).update(**dict.fromkeys(names, 0))
