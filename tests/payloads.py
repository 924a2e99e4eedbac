"""What the order system publishes: ORDER_STATUS payloads shaped like PlanOmatic's own.

Every test that publishes an ORDER_STATUS event builds its payload here, so each one
passes the catalogue's JSON Schema (``publishEvent`` refuses anything else). Values are
invented. Keyword arguments replace top-level fields or add new ones (the schema lets
the order system add fields; receivers ignore those they do not know):

    order_status_payload(order_status="completed", order_id=41)
    order_status_payload(n=3)        # an extra field a test uses to tell events apart
"""

from __future__ import annotations

import copy
from typing import Any

_ORDER: dict[str, Any] = {
    "request_id": 5001,
    "request_datetime": "2026-12-01T09:30:00Z",
    "order_id": 41,
    "order_datetime": "2026-11-29T11:00:00Z",
    "order_status": "ordered",
    "submitted_cancel_onsite": False,
    "job_due_date": None,
    "external_id": "TEST-41",
    "order_notes": None,
    "client": {
        "first_name": "Casey",
        "last_name": "Sample",
        "email": "casey.sample@example.com",
        "phone": "+1-555-0100",
    },
    "property_info": {
        "price": "410000",
        "sqft": "1650",
        "bedrooms": "3",
        "bathrooms": "2",
        "property_id": 9001,
        "property_type": "Condo",
        "address": {
            "street": "1 Test Street",
            "address2": "Unit 4",
            "city": "Boulder",
            "province": "CO",
            "postal_code": "80301",
        },
    },
    "appointments": [],
    "links": {
        "tour_link": None,
        "tour_mls_link": None,
        "zillow_3d_link": None,
        "matterport_3d_link": None,
        "video_slideshow_link": None,
        "photo_manage_link": None,
    },
    "primary_service": {
        "group_id": 12,
        "group_slug": "photography",
        "group_name": "Photography",
        "quantity": 1,
        "service_instructions": None,
    },
    "add_on_services": [],
}


def order_status_payload(**fields: Any) -> dict[str, Any]:
    """A valid ORDER_STATUS payload with ``fields`` replacing or adding top-level fields."""
    return {**copy.deepcopy(_ORDER), **fields}
