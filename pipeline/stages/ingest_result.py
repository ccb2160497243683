"""One batch of raw records through the ingest stage, as a :class:`StageResult`.

The core (:class:`~pipeline.stages.ingest.Ingestor`) validates and tags; routing
(:class:`~pipeline.stages.routing.Router`) says which ``mentions.routed`` partition each
mention goes to. Ingest is stateless: nothing to save.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from pipeline.event_time import epoch_seconds
from pipeline.stages.ingest import Ingestor
from pipeline.stages.routing import Router
from pipeline.stages.stage_result import Latencies, MetricDelta, OutRecord, StageResult


def ingest_result(ingestor: Ingestor, router: Router, raws: list[bytes], *,
                  ingested_at: float | None, forward_unmatched: bool) -> StageResult:
    """Validate and tag ``raws`` and route them on; the invalid ones are refused whole.

    The metrics count the mentions that matched no listening query and each brand's volume
    (one change per brand per batch: a labelled increment per mention showed in profiles).
    """
    outcome = ingestor.process_encoded(raws, ingested_at=ingested_at)
    brand_counts = Counter(brand for mention in outcome.mentions for brand in mention.brands)
    metrics = [MetricDelta("unmatched", (), len(outcome.unmatched))]
    metrics += [MetricDelta("brand_volume", (("brand", brand),), count)
                for brand, count in brand_counts.items()]
    forwarded = outcome.forwarded(forward_unmatched)
    sent_at = np.nan if ingested_at is None else ingested_at
    return StageResult(
        records=[OutRecord("routed", value, partition=partition)
                 for partition, values in router.records(forwarded).items()
                 for value in values],
        rejects=outcome.rejects,
        metrics=metrics,
        taken=len(raws),
        latencies=Latencies(np.full(len(forwarded), sent_at, dtype=np.float64),
                            epoch_seconds([mention.created_at for mention in forwarded])),
    )
