"""Sends OpenLineage RunEvents the way a real producer does: openlineage-python's own client, HTTP
transport, event and facet classes (openlineage.client.event_v2 / facet_v2), so the JSON on the wire is
what that client really produces.

    python send_events.py [URL]

URL (or env OPENLINEAGE_URL) is the server's base URL, e.g. http://127.0.0.1:5000; the events go to
URL + endpoint, the endpoint being env OPENLINEAGE_ENDPOINT or the client's default api/v1/lineage.
Env OPENLINEAGE_API_KEY, if set, is sent as `Authorization: Bearer <key>` (the client's api_key auth).
Env OPENLINEAGE_COMPRESSION=gzip turns on the transport's compression (`Content-Encoding: gzip`).

Prints one line per event sent. Exits non-zero on any failure: the 1.54.0 HTTP transport calls
raise_for_status() after each POST (after retrying 500/502/503/504 and connection errors), and
OpenLineageClient.emit() lets that exception through.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import ClassVar

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    column_lineage_dataset,
    error_message_run,
    schema_dataset,
    tags_dataset,
)
from openlineage.client.transport.http import HttpConfig, HttpTransport
from openlineage.client.uuid import generate_new_uuid

JOB_NAMESPACE = "warehouse-jobs"
DATASET_NAMESPACE = "warehouse"
PURPOSE_SCHEMA_URL = (
    "https://github.com/lineage-audit/lineage-audit/blob/main/schemas/openlineage/"
    "LineageAuditPurposeRunFacet.json"
)


@attr.define
class LineageAuditPurposeRunFacet(RunFacet):
    """The auditor's custom run facet, sent as `lineageAudit_purpose` (custom facets are prefixed)."""

    kind: str
    purposes: list[str]
    dataSubject: str  # noqa: N815
    recipient: dict[str, object]
    _additional_skip_redact: ClassVar[list[str]] = ["kind", "purposes", "dataSubject", "recipient"]

    @staticmethod
    def _get_schema() -> str:
        return PURPOSE_SCHEMA_URL


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def schema(*fields: tuple[str, str]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=name, type=type_) for name, type_ in fields]
    )


def masked(field: str) -> column_lineage_dataset.InputField:
    return column_lineage_dataset.InputField(
        namespace=DATASET_NAMESPACE,
        name="profile.contact_points",
        field=field,
        transformations=[
            column_lineage_dataset.Transformation(type="DIRECT", subtype="TRANSFORMATION", masking=True)
        ],
    )


def contact_points(with_facets: bool) -> InputDataset:
    facets = {}
    if with_facets:
        facets = {
            "schema": schema(("email", "VARCHAR"), ("phone_number", "VARCHAR"), ("user_id", "BIGINT")),
            "tags": tags_dataset.TagsDatasetFacet(
                tags=[
                    tags_dataset.TagsDatasetFacetFields(
                        key="data_category", value="user.contact.phone_number", field="phone_number"
                    ),
                    tags_dataset.TagsDatasetFacetFields(
                        key="data_category", value="user.contact.email", field="email"
                    ),
                ]
            ),
        }
    return InputDataset(namespace=DATASET_NAMESPACE, name="profile.contact_points", facets=facets)


def matching_keys(with_facets: bool) -> OutputDataset:
    facets = {}
    if with_facets:
        facets = {
            "schema": schema(("phone_sha256", "VARCHAR"), ("email_sha256", "VARCHAR"), ("user_id", "BIGINT")),
            "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(
                fields={
                    "phone_sha256": column_lineage_dataset.Fields(inputFields=[masked("phone_number")]),
                    "email_sha256": column_lineage_dataset.Fields(inputFields=[masked("email")]),
                    "user_id": column_lineage_dataset.Fields(
                        inputFields=[
                            column_lineage_dataset.InputField(
                                namespace=DATASET_NAMESPACE,
                                name="profile.contact_points",
                                field="user_id",
                                transformations=[
                                    column_lineage_dataset.Transformation(type="DIRECT", subtype="IDENTITY")
                                ],
                            )
                        ]
                    ),
                }
            ),
        }
    return OutputDataset(namespace=DATASET_NAMESPACE, name="ads.matching_keys", facets=facets)


def events() -> list[RunEvent]:
    graph = Job(namespace=JOB_NAMESPACE, name="ads.identity-graph")
    export = Job(namespace=JOB_NAMESPACE, name="ads.partner-export")
    run_ok, run_failed, run_export = (str(generate_new_uuid()) for _ in range(3))
    return [
        RunEvent(eventType=RunState.START, eventTime=now(), run=Run(runId=run_ok), job=graph),
        RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=now(),
            run=Run(runId=run_ok),
            job=graph,
            inputs=[contact_points(with_facets=True)],
            outputs=[matching_keys(with_facets=True)],
        ),
        RunEvent(
            eventType=RunState.FAIL,
            eventTime=now(),
            run=Run(
                runId=run_failed,
                facets={
                    "errorMessage": error_message_run.ErrorMessageRunFacet(
                        message="duplicate key in ads.matching_keys", programmingLanguage="python"
                    )
                },
            ),
            job=graph,
            inputs=[contact_points(with_facets=False)],
            outputs=[matching_keys(with_facets=False)],
        ),
        RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=now(),
            run=Run(
                runId=run_export,
                facets={
                    "lineageAudit_purpose": LineageAuditPurposeRunFacet(
                        kind="SHARE",
                        purposes=["marketing.advertising.third_party.targeted"],
                        dataSubject="customer",
                        recipient={"name": "partner-co", "external": True},
                    )
                },
            ),
            job=export,
            inputs=[
                InputDataset(
                    namespace=DATASET_NAMESPACE,
                    name="ads.matching_keys",
                    facets={"schema": schema(("phone_sha256", "VARCHAR"))},
                )
            ],
            outputs=[],
        ),
    ]


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OPENLINEAGE_URL")
    if not url:
        print("usage: send_events.py URL (or set OPENLINEAGE_URL)", file=sys.stderr)
        return 2
    config: dict[str, object] = {
        "url": url,
        "endpoint": os.environ.get("OPENLINEAGE_ENDPOINT", "api/v1/lineage"),
    }
    if api_key := os.environ.get("OPENLINEAGE_API_KEY"):
        config["auth"] = {"type": "api_key", "apiKey": api_key}
    if compression := os.environ.get("OPENLINEAGE_COMPRESSION"):
        config["compression"] = compression
    transport = HttpTransport(HttpConfig.from_dict(config))
    statuses: list[int] = []
    transport.session.hooks["response"].append(lambda resp, *_a, **_k: statuses.append(resp.status_code))
    client = OpenLineageClient(transport=transport)

    for event in events():
        client.emit(event)  # raises on a connection error or an HTTP status >= 400
        outputs = ",".join(d.name for d in event.outputs or []) or "-"
        inputs = ",".join(d.name for d in event.inputs or []) or "-"
        print(
            f"sent {event.eventType.value} {event.job.namespace}/{event.job.name} run {event.run.runId}"
            f" inputs {inputs} outputs {outputs} -> HTTP {statuses[-1] if statuses else '?'}",
            flush=True,
        )
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
