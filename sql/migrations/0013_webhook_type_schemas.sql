-- The webhook catalogue with JSON Schemas: every type carries the JSON Schema (draft
-- 2020-12) its payloads must match, a realistic sample, and where in a payload its
-- subject and its status are.
--
-- payload_schema: publishEvent refuses a payload that does not match it. Operators set
--   it with `webhooks webhook-type put` (app/domain/webhook_types.py checks it first).
-- subject_pointer: JSON pointer (RFC 6901) to the payload value that is the event's
--   subject when the publisher gives none; ORDER_STATUS: /order_id, the order id.
-- status_pointer: JSON pointer to the status field whose values (and their meanings)
--   the catalogue lists from the schema; ORDER_STATUS: /order_status.
-- updated_at: changes with every change of the row; a running API process compares it
--   with the version of the compiled schema it caches, so an update needs no restart.
--
-- ORDER_STATUS gets its schema, sample and description as PlanOmatic's API reference
-- documents them: exactly the content of examples/catalogue/order_status.schema.json
-- and order_status.sample.json (tests/acceptance/test_catalogue_cli.py checks that a put
-- of those files changes nothing). The toy camelCase sample goes; events already
-- published keep their payloads.

-- The schema and the sample are json, not jsonb: a catalogue is read by people, and json
-- keeps a document's keys in the order its author wrote them (jsonb sorts them by
-- length). Nothing queries inside them; publishing compiles the schema in Python.
ALTER TABLE webhook_types
    DROP CONSTRAINT webhook_types_sample_payload_check,
    ALTER COLUMN sample_payload TYPE json USING sample_payload::json,
    ADD CONSTRAINT webhook_types_sample_payload_check
        CHECK (json_typeof(sample_payload) = 'object'),
    ADD COLUMN payload_schema json CHECK (json_typeof(payload_schema) = 'object'),
    ADD COLUMN subject_pointer text CHECK (subject_pointer ~ '^(/[^/]*)+$'),
    ADD COLUMN status_pointer text CHECK (status_pointer ~ '^(/[^/]*)+$'),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

UPDATE webhook_types SET
    description = 'Sent whenever an order changes status, from placement through '
        'scheduling, the shoot, editing and delivery of the media. The subject is the '
        'order id (order_id, as a string).',
    subject_pointer = '/order_id',
    status_pointer = '/order_status',
    updated_at = now(),
    payload_schema = $order_status_schema$
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://webhooks.planomatic.invalid/schemas/ORDER_STATUS.json",
  "title": "Order Status",
  "description": "The data of an ORDER_STATUS event: an order as it stands after a status change. The event's subject is the order id (order_id, as a string). Fields not listed here may be added at any time; receivers must ignore fields they do not know.",
  "type": "object",
  "required": [
    "request_id",
    "request_datetime",
    "order_id",
    "order_datetime",
    "order_status",
    "submitted_cancel_onsite",
    "job_due_date",
    "external_id",
    "order_notes",
    "client",
    "property_info",
    "appointments",
    "links",
    "primary_service",
    "add_on_services"
  ],
  "properties": {
    "request_id": {
      "type": "integer",
      "description": "Id of this notification request; unique per status change."
    },
    "request_datetime": {
      "type": "string",
      "format": "date-time",
      "description": "When the status changed (RFC 3339)."
    },
    "order_id": {
      "type": "integer",
      "description": "PlanOmatic's order id; also the event's subject."
    },
    "order_datetime": {
      "type": "string",
      "format": "date-time",
      "description": "When the order was placed (RFC 3339)."
    },
    "order_status": {
      "description": "The order's status after this change.",
      "oneOf": [
        {
          "const": "ordered",
          "description": "The order was placed and awaits scheduling."
        },
        {
          "const": "scheduled",
          "description": "A shoot is booked: the order has an appointment with a photographer."
        },
        {
          "const": "assembly",
          "description": "The shoot is done; the media are being edited and assembled."
        },
        {
          "const": "notified",
          "description": "The media are ready and the client has been notified; a subscriber can now fetch them from the Data Feed API."
        },
        {
          "const": "completed",
          "description": "The order is complete: everything was delivered and the order is closed."
        },
        {
          "const": "hold",
          "description": "The order is on hold; nothing proceeds until it is released."
        },
        {
          "const": "cancelled",
          "description": "The order was cancelled."
        },
        {
          "const": "submitted_cancel_onsite",
          "description": "The order was cancelled on site (the photographer was there but the shoot could not take place); submitted_cancel_onsite is true."
        },
        {
          "const": "pending_appointment",
          "description": "The order waits for an appointment time to be confirmed."
        },
        {
          "const": "ready_to_schedule",
          "description": "Everything needed is in; the order can be scheduled."
        },
        {
          "const": "committed",
          "description": "The appointment is confirmed with the photographer."
        }
      ]
    },
    "submitted_cancel_onsite": {
      "type": "boolean",
      "description": "True when the order was cancelled on site."
    },
    "job_due_date": {
      "type": [
        "string",
        "null"
      ],
      "format": "date-time",
      "description": "When the media are due, once known."
    },
    "external_id": {
      "type": "string",
      "description": "The customer's own reference for the order (may be empty)."
    },
    "order_notes": {
      "type": [
        "string",
        "null"
      ],
      "description": "Notes entered with the order, if any."
    },
    "client": {
      "type": "object",
      "required": [
        "first_name",
        "last_name",
        "email",
        "phone"
      ],
      "properties": {
        "first_name": {
          "type": "string"
        },
        "last_name": {
          "type": "string"
        },
        "email": {
          "type": "string"
        },
        "phone": {
          "type": "string"
        }
      }
    },
    "property_info": {
      "type": "object",
      "required": [
        "price",
        "sqft",
        "bedrooms",
        "bathrooms",
        "property_id",
        "property_type",
        "address"
      ],
      "properties": {
        "price": {
          "type": "string",
          "description": "Listing price as entered, e.g. \"525000\"."
        },
        "sqft": {
          "type": "string"
        },
        "bedrooms": {
          "type": "string"
        },
        "bathrooms": {
          "type": "string"
        },
        "property_id": {
          "type": "integer"
        },
        "property_type": {
          "type": "string",
          "description": "e.g. \"Single Family\", \"Condo\"."
        },
        "address": {
          "type": "object",
          "required": [
            "street",
            "address2",
            "city",
            "province",
            "postal_code"
          ],
          "properties": {
            "street": {
              "type": "string"
            },
            "address2": {
              "type": [
                "string",
                "null"
              ]
            },
            "city": {
              "type": "string"
            },
            "province": {
              "type": "string",
              "description": "State or province."
            },
            "postal_code": {
              "type": "string"
            }
          }
        }
      }
    },
    "appointments": {
      "type": "array",
      "items": {
        "type": "object",
        "required": [
          "start_datetime",
          "end_datetime",
          "duration",
          "cancellation_reason",
          "cancellation_reason_detail"
        ],
        "properties": {
          "start_datetime": {
            "type": "string",
            "format": "date-time"
          },
          "end_datetime": {
            "type": "string",
            "format": "date-time"
          },
          "duration": {
            "type": "number",
            "minimum": 0,
            "description": "Length of the appointment in minutes."
          },
          "cancellation_reason": {
            "type": [
              "string",
              "null"
            ]
          },
          "cancellation_reason_detail": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      }
    },
    "links": {
      "type": "object",
      "required": [
        "tour_link",
        "tour_mls_link",
        "zillow_3d_link",
        "matterport_3d_link",
        "video_slideshow_link",
        "photo_manage_link"
      ],
      "properties": {
        "tour_link": {
          "type": [
            "string",
            "null"
          ],
          "description": "null until the media exist."
        },
        "tour_mls_link": {
          "type": [
            "string",
            "null"
          ],
          "description": "null until the media exist."
        },
        "zillow_3d_link": {
          "type": [
            "string",
            "null"
          ],
          "description": "null until the media exist."
        },
        "matterport_3d_link": {
          "type": [
            "string",
            "null"
          ],
          "description": "null until the media exist."
        },
        "video_slideshow_link": {
          "type": [
            "string",
            "null"
          ],
          "description": "null until the media exist."
        },
        "photo_manage_link": {
          "type": [
            "string",
            "null"
          ],
          "description": "null until the media exist."
        }
      }
    },
    "primary_service": {
      "$ref": "#/$defs/service"
    },
    "add_on_services": {
      "type": "array",
      "items": {
        "$ref": "#/$defs/service"
      }
    }
  },
  "$defs": {
    "service": {
      "type": "object",
      "required": [
        "group_id",
        "group_slug",
        "group_name",
        "quantity",
        "service_instructions"
      ],
      "properties": {
        "group_id": {
          "type": "integer",
          "description": "Id of the service group."
        },
        "group_slug": {
          "type": "string",
          "description": "Stable machine name of the service group, e.g. \"photography\"."
        },
        "group_name": {
          "type": "string",
          "description": "Human name of the service group."
        },
        "quantity": {
          "type": "integer",
          "minimum": 0
        },
        "service_instructions": {
          "type": [
            "string",
            "null"
          ],
          "description": "Instructions for the crew, if any."
        }
      }
    }
  }
}
$order_status_schema$,
    sample_payload = $order_status_sample$
{
  "request_id": 918273,
  "request_datetime": "2026-11-30T16:05:12Z",
  "order_id": 332818,
  "order_datetime": "2026-11-28T14:22:40Z",
  "order_status": "scheduled",
  "submitted_cancel_onsite": false,
  "job_due_date": "2026-12-03T17:00:00Z",
  "external_id": "ACME-7731",
  "order_notes": "Lockbox on the side door; code with the listing agent.",
  "client": {
    "first_name": "Jordan",
    "last_name": "Example",
    "email": "jordan.example@example.com",
    "phone": "+1-555-0142"
  },
  "property_info": {
    "price": "525000",
    "sqft": "2140",
    "bedrooms": "4",
    "bathrooms": "2.5",
    "property_id": 77104,
    "property_type": "Single Family",
    "address": {
      "street": "1200 Example Avenue",
      "address2": null,
      "city": "Denver",
      "province": "CO",
      "postal_code": "80202"
    }
  },
  "appointments": [
    {
      "start_datetime": "2026-12-02T15:00:00Z",
      "end_datetime": "2026-12-02T16:30:00Z",
      "duration": 90,
      "cancellation_reason": null,
      "cancellation_reason_detail": null
    }
  ],
  "links": {
    "tour_link": null,
    "tour_mls_link": null,
    "zillow_3d_link": null,
    "matterport_3d_link": null,
    "video_slideshow_link": null,
    "photo_manage_link": null
  },
  "primary_service": {
    "group_id": 12,
    "group_slug": "photography",
    "group_name": "Photography",
    "quantity": 1,
    "service_instructions": "Twilight exteriors if the weather allows."
  },
  "add_on_services": [
    {
      "group_id": 31,
      "group_slug": "floor-plan",
      "group_name": "Floor Plan",
      "quantity": 1,
      "service_instructions": null
    }
  ]
}
$order_status_sample$
WHERE key = 'ORDER_STATUS';

-- Any other type an operator added by hand accepts every object until it gets a schema.
UPDATE webhook_types SET payload_schema = '{"type": "object"}' WHERE payload_schema IS NULL;

ALTER TABLE webhook_types ALTER COLUMN payload_schema SET NOT NULL;
