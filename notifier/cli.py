"""The operator's commands: status and retry."""

import models
from notifier import outbox

DEAD_SHOWN = 20


def run(args, settings):
    models.connect(settings.database_url)
    models.create_tables()
    if args.command == "status":
        return status()
    if args.command == "retry":
        return retry(args.ids, args.dead)
    raise ValueError(args.command)


def status():
    counts = outbox.counts()
    for state, count in counts.items():
        print(f"{state:8} {count}")
    age = outbox.oldest_pending_age()
    if age is None:
        print("oldest pending: none")
    else:
        print(f"oldest pending: {age:.0f} s")
    dead = outbox.latest_dead(DEAD_SHOWN)
    if dead:
        print("\nlatest dead (retry with: server.py retry ID ... or --dead):")
        for row in dead:
            reference = row.order.reference if row.order_id is not None else "-"
            error = (row.last_error or "").replace("\n", " ")[:160]
            print(
                f"  {row.id} {row.kind} order {reference}, "
                f"{row.attempts} attempts: {error}"
            )
    return 0


def retry(ids, dead):
    requeued, refused = outbox.requeue(ids=ids, dead=dead)
    missing = sorted(set(ids) - set(requeued) - set(refused))
    if requeued:
        shown = ", ".join(map(str, requeued[:50]))
        more = "" if len(requeued) <= 50 else f" and {len(requeued) - 50} more"
        print(f"requeued {len(requeued)}: {shown}{more}")
    elif dead:
        print("no dead notifications")
    for nid, state in sorted(refused.items()):
        print(f"notification {nid} is {state}; not requeued")
    for nid in missing:
        print(f"no notification {nid}")
    return 0 if not refused and not missing else 1
