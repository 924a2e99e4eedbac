"""The Subscription root: live delivery updates over graphql-transport-ws."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app import deliveries
from app.ids import try_uuid
from schema.context import Info
from schema.types import Delivery


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Pushed whenever a delivery of the viewer's company changes (attempt "
        "made, succeeded, failed)."
    )
    async def delivery_updates(
        self,
        info: Info,
        subscription_id: strawberry.ID | None = None,
        subject: str | None = None,
    ) -> AsyncGenerator[Delivery, None]:
        viewer = info.context.require_viewer()
        services = info.context.services
        assert services.updates is not None
        wanted = try_uuid(str(subscription_id)) if subscription_id is not None else None
        async with services.updates.subscribe(viewer.read_scope) as changes:
            while True:
                change = await changes.get()
                if subscription_id is not None and change.subscription_id != wanted:
                    continue
                if subject is not None and change.subject != subject:
                    continue
                # Loaded through the viewer's scoped query: never another company's row.
                found = await deliveries.get_delivery(services, viewer, str(change.delivery_id))
                if found is not None:
                    yield Delivery.from_model(found)
