"""The Subscription root: live delivery updates over graphql-transport-ws."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.core.ids import try_uuid
from app.core.viewer import Viewer
from app.domain import deliveries
from app.store.database import Database
from app.store.delivery_updates import DeliveryChange
from schema.context import Info
from schema.lookahead import selects
from schema.types import Delivery


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Pushed whenever a delivery of the viewer's company changes (attempt "
        "made, succeeded, failed): one update per change, in order, each showing the "
        "delivery as that change left it, with the attempts made until then. COMPANY "
        "keys only."
    )
    async def delivery_updates(
        self,
        info: Info,
        subscription_id: strawberry.ID | None = None,
        subject: str | None = None,
    ) -> AsyncGenerator[Delivery, None]:
        # The order system follows what it published by id (delivery, event); a stream
        # of every company's changes would show it far more than that.
        viewer = info.context.require_company(
            "PUBLISHER keys cannot follow companies' deliveries live; "
            "read the status of a published event's deliveries with `event(id:)`."
        )
        services = info.context.services
        if services.updates is None:
            raise RuntimeError("live updates need the services of a served app (no hub opened)")
        wanted = try_uuid(str(subscription_id)) if subscription_id is not None else None
        with_attempts = selects(info, ("attempts",))
        async with services.updates.subscribe(viewer.own_company) as changes:
            while True:
                change = await changes.get()
                if subscription_id is not None and change.subscription_id != wanted:
                    continue
                if subject is not None and change.subject != subject:
                    continue
                update = await _as_announced(
                    services.db, viewer, change, with_attempts=with_attempts
                )
                if update is not None:
                    # Its nested fields resolve with loaders of this update's own
                    # (schema/execution.py), so they are as fresh as the update.
                    yield update


async def _as_announced(
    db: Database, viewer: Viewer, change: DeliveryChange, *, with_attempts: bool
) -> Delivery | None:
    """The delivery as ``change`` left it, with the attempts made until then.

    Loaded through the viewer's scoped query (never another company's row); the state
    is the one announced, not whatever the row holds by now, so a fast delivery still
    shows PENDING first and SUCCEEDED once.
    """
    found = await deliveries.get_delivery(db, viewer, str(change.delivery_id))
    if found is None:
        return None
    if change.state is not None:
        found = deliveries.as_changed(found, change.state)
    if not with_attempts:
        return Delivery.from_model(found)
    attempts = await deliveries.attempts_of_deliveries(db, viewer, [found.id])
    made = deliveries.attempts_as_of(found, attempts.get(found.id, []))
    return Delivery.from_model(found, {found.id: made})
