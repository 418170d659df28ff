"""SLA Clock HTTP API (see docs/api.md): routes only. Parse, authorize, call the core, render."""
import os
from datetime import UTC, datetime

from chalice import Chalice, Cron, Rate, Response

from chalicelib import (
    batches,
    calendars,
    connect,
    contracts,
    erasures,
    interactions,
    logs,
    openapi,
    reporting,
    requests,
    scanner,
    ses_feedback,
    shards,
    simulations,
    tokens,
)
from chalicelib.budget import Budget
from chalicelib.core.calendar import parse_date
from chalicelib.http import Api

app = Chalice(app_name="sla-clock")
logs.configure(app.log)  # Chalice's own lines (an exception escaping a route) are masked JSON too
# The Amazon Connect contact-record stream. Packaging needs a name here; the deployed stack takes the
# real one as its ConnectContactRecordStream parameter (infra/generate.py connect-stream).
CONTACT_RECORD_STREAM = "sla-clock-connect-contact-records"
api = Api(app)


@api.route("/health", methods=["GET"], public=True)
def health(call):
    return {"status": "ok"}


@api.route("/openapi.json", methods=["GET"], public=True)
def openapi_document(call):
    """The OpenAPI description of every route, for client generators and API tools."""
    return openapi.served(call.base_url)


@api.route("/contracts/{contract_id}", methods=["PUT"], roles=("admin",))
def put_contract(call, contract_id):
    document, created = contracts.put_contract(call.principal, contract_id, call.body, call.now)
    return (201 if created else 200), document


@api.route("/contracts/{contract_id}", methods=["GET"])
def get_contract(call, contract_id):
    return contracts.get_contract(call.principal, contract_id, call.now)


@api.route("/contracts/{contract_id}/calendar", methods=["GET"])
def get_contract_calendar(call, contract_id):
    return calendars.contract_calendar(call.principal, contract_id, call.query, call.now)


@api.route("/contracts/{contract_id}/calendar.ics", methods=["GET"], token_in_query=True)
def get_contract_calendar_ics(call, contract_id):
    """Calendar apps subscribe by URL and send no headers: the token may come as ?token=…"""
    body = calendars.contract_calendar_ics(call.principal, contract_id, call.query, call.now)
    return Response(body=body.decode("utf-8"), status_code=200,
                    headers={"Content-Type": "text/calendar; charset=utf-8",
                             "Content-Disposition": f'inline; filename="{contract_id}.ics"'})


@api.route("/contracts/{contract_id}/preview", methods=["POST"])
def preview_request(call, contract_id):
    return contracts.preview(call.principal, contract_id, call.body, call.now)


@api.route("/contracts/{contract_id}/simulations", methods=["POST"], roles=("admin", "agent"))
def simulate_month(call, contract_id):
    """What a month would have cost under a candidate contract; nothing stored, nothing sent."""
    return simulations.simulate(call.principal, contract_id, call.body, call.now)


@api.route("/calendars/{country}/{year}", methods=["GET"])
def get_calendar_year(call, country, year):
    return calendars.get_year(country, year)


@api.route("/calendars/{country}/{year}", methods=["PUT"], roles=("admin",))
def put_calendar_year(call, country, year):
    return calendars.put_year(call.principal, country, year, call.body, call.now)


@api.route("/calendars/{country}/{year}", methods=["DELETE"], roles=("admin",))
def delete_calendar_year(call, country, year):
    calendars.delete_year(call.principal, country, year, call.now)
    return 204, None


@api.route("/contracts/{contract_id}/reports", methods=["GET"])
def get_report(call, contract_id):
    content_type, body = reporting.report(call.principal, contract_id, call.query, call.now)
    if content_type == "text/csv":
        return Response(body=body, status_code=200, headers={"Content-Type": "text/csv; charset=utf-8"})
    return body


@api.route("/contracts/{contract_id}/outages", methods=["POST"], roles=("admin",))
def record_outage(call, contract_id):
    return 201, reporting.record_outage(call.principal, contract_id, call.body, call.now)


@api.route("/contracts/{contract_id}/outages", methods=["GET"])
def list_outages(call, contract_id):
    return reporting.list_outages(call.principal, contract_id)


@api.route("/contracts/{contract_id}/interactions", methods=["POST"], roles=("agent", "admin"),
           max_body=interactions.MAX_BODY)
def post_interactions(call, contract_id):
    return interactions.post_interactions(call.principal, contract_id, call.body, call.now)


@api.route("/contracts/{contract_id}/tallies", methods=["POST"], roles=("admin",))
def backfill_tally(call, contract_id):
    return reporting.backfill(call.principal, contract_id, call.body, call.now)


@api.route("/contracts/{contract_id}/erasures", methods=["POST"], roles=("admin",))
def erase_personal_data(call, contract_id):
    """Erase a requester's personal data in every request of the contract (PIPL); the SLA facts stay."""
    return erasures.erase_on_request(call.principal, contract_id, call.body, call.now)


@api.route("/contracts/{contract_id}/erasures", methods=["GET"], roles=("admin",))
def list_erasures(call, contract_id):
    return erasures.list_erasures(call.principal, contract_id, call.query)


@api.route("/requests", methods=["POST"])
def create_request(call):
    return requests.create_request(call.principal, call.body, call.header("idempotency-key"), call.now)


@api.route("/requests", methods=["GET"])
def list_requests(call):
    return requests.list_requests(call.principal, call.query, call.now)


@api.route("/requests/{request_id}", methods=["GET"])
def get_request(call, request_id):
    return requests.get_request(call.principal, request_id, call.now)


@api.route("/requests/{request_id}/events", methods=["GET"])
def list_events(call, request_id):
    return requests.list_events(call.principal, request_id, call.query)


@api.route("/requests/{request_id}/notifications", methods=["GET"], roles=("agent", "admin"))
def list_notifications(call, request_id):
    return requests.list_notifications(call.principal, request_id, call.query)


@api.route("/requests/{request_id}/events", methods=["POST"])
def post_event(call, request_id):
    return requests.post_event(call.principal, request_id, call.body, call.now)


@api.route("/tokens", methods=["GET"], roles=("admin",))
def list_tokens(call):
    return tokens.list_tokens(call.query)


@api.route("/tokens", methods=["POST"], roles=("admin",))
def issue_token(call):
    return 201, tokens.issue_token(call.principal, call.body, call.now)


@api.route("/tokens/{token_id}", methods=["DELETE"], roles=("admin",))
def revoke_token(call, token_id):
    tokens.revoke_token(token_id)
    return 204, None


@app.schedule(Rate(1, unit=Rate.MINUTES))
def scan_deadlines(event):
    """Every minute: warnings, breach alerts and progress reminders that have come due, within a time
    budget below the function's timeout; what is left goes to the next scan. With SLA_SCAN_SHARDS = K,
    the scheduled invocation hands K - 1 shard groups to invocations of this function (the event's
    detail names the group) and scans the first."""
    share = shards.take(event.to_dict(), event.context.function_name)
    return scanner.scan(datetime.now(UTC), Budget(scanner.SCAN_SECONDS, event.context), share=share).as_dict()


@app.schedule(Cron(5, 16, "*", "*", "?", "*"))
def nightly_tally(event):
    """00:05 Asia/Shanghai: tally each contract's previous local day. A back-fill passes
    {"date": "YYYY-MM-DD", "contract_id": optional} as the event's detail. What does not fit in the
    invocation's time is left to nightly_tally_continue."""
    detail = event.to_dict().get("detail") or {}
    day = parse_date(detail["date"], "date") if detail.get("date") else None
    now = datetime.now(UTC)
    result = reporting.run_nightly(now, _seconds_left(event), day, detail.get("contract_id"))
    return result | {"calendar_notices": calendars.send_year_notices(now)}


@app.schedule(Rate(5, unit=Rate.MINUTES))
def nightly_tally_continue(event):
    """Every 5 minutes: go on with a nightly run that ran out of time or whose invocation died."""
    return reporting.continue_nightly(datetime.now(UTC), _seconds_left(event))


# Chalice needs the topic when it packages the stage, so this one variable is read at import.
@app.on_sns_message(topic=os.environ.get("SLA_SES_EVENTS_TOPIC", "sla-clock-ses-events"))
def ses_events(event):
    """SES's delivery, bounce and complaint events of the emails sent through the stage's configuration
    set (topic named by SLA_SES_EVENTS_TOPIC when the app is packaged), recorded on their notification."""
    [outcome] = ses_feedback.consume(event.to_dict()["Records"], datetime.now(UTC))  # SNS sends one message
    return {"outcome": outcome}


@app.on_kinesis_record(stream=CONTACT_RECORD_STREAM, batch_size=100, starting_position="LATEST")
def connect_contact_records(event):
    """Amazon Connect contact records → interactions of the contracts that list their queues. Answers
    Lambda with the records to retry (the mapping reports batch item failures); the raw records go
    to the use case, which decodes each on its own (chalice's KinesisRecord raises on bad base64)."""
    _, failed = connect.consume(event.to_dict()["Records"], datetime.now(UTC))
    return batches.partial_failure(failed)


def _seconds_left(event):
    return event.context.get_remaining_time_in_millis() / 1000
