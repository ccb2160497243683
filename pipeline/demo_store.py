"""The end of ``mentions demo``: the store holds exactly what reached its topics.

The first worker also runs the store sink (:func:`store_worker_env`); once it stopped,
:func:`check_store` compares the store with the mention ids and alert keys the demo saw on
the scored and alerts topics (:class:`pipeline.demo_watch.Watch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.config import Settings, settings_env

if TYPE_CHECKING:
    from pipeline.store.client import ListeningStore


def store_worker_env(settings: Settings) -> dict[str, str]:
    """What makes a worker also the store's sink and the desk's server."""
    return {
        **settings_env(settings, ("store_url", "desk_port", "desk_host")),
        "PIPELINE_STAGES": ",".join((*settings.stages, "store")),
        "PIPELINE_DESK_IN_WORKER": "true",
    }


def check_store(settings: Settings, scored_ids: set[str],
                alert_keys: dict[str, set[str]]) -> bool:
    """True when the store holds exactly the mentions and alerts seen on their topics.

    ``alert_keys``: the idempotency keys of each incident's alerts on the alerts topic. Run
    once the store's worker has stopped: an embedded store opens in one process at a time.
    """
    from pipeline.store.client import ListeningStore, StoreUnavailable

    try:
        store = ListeningStore.open(settings)
    except StoreUnavailable as error:
        print(f"store: not readable ({error})", flush=True)
        return False
    try:
        mentions_kept = _check_stored_mentions(settings, store.mention_ids(), scored_ids)
        alerts_kept = _check_stored_alerts(settings, store, alert_keys)
    finally:
        store.close()
    return mentions_kept and alerts_kept


def _check_stored_alerts(settings: Settings, store: ListeningStore,
                         alert_keys: dict[str, set[str]]) -> bool:
    """True when the store holds exactly the alerts seen on the alerts topic, by incident."""
    seen = set().union(*alert_keys.values())
    stored = {alert["idempotency_key"] for incident_id in alert_keys
              for alert in (store.incident(incident_id) or {"history": []})["history"]}
    count = store.alert_count()
    if stored == seen and count == len(seen):
        print(f"store: {count} alert events of {len(alert_keys)} incident(s), exactly those "
              f"on {settings.alerts_topic}", flush=True)
        return True
    print(f"store: {count} alert events against {len(seen)} on {settings.alerts_topic}: "
          f"{len(seen - stored)} missing, {count - len(seen & stored)} unexpected", flush=True)
    return False


def _check_stored_mentions(settings: Settings, stored: set[str], scored_ids: set[str]) -> bool:
    """True when the store holds exactly the distinct mentions seen on the scored topic."""
    if stored == scored_ids:
        print(f"store: {len(stored)} distinct mentions, exactly the distinct ids on "
              f"{settings.topic('scored')}; browse them with: mentions desk --store-url "
              f"{settings.store_url}", flush=True)
        return True
    print(f"store: {len(stored)} distinct mentions against {len(scored_ids)} distinct ids on "
          f"{settings.topic('scored')}: {len(scored_ids - stored)} missing, "
          f"{len(stored - scored_ids)} unexpected", flush=True)
    return False
