"""SLA Clock HTTP API (DESIGN.md §2–3, §6): routes only. Parse, authorize, call the core, render."""
from datetime import datetime, timezone

from chalice import Chalice, Rate

from chalicelib import auth, logs, scanner, service
from chalicelib.http import Api

logs.configure()
app = Chalice(app_name="sla-clock")
api = Api(app)


@api.route("/health", methods=["GET"], public=True)
def health(call):
    return {"status": "ok"}


@api.route("/contracts/{contract_id}", methods=["PUT"], roles=("admin",))
def put_contract(call, contract_id):
    document, created = service.put_contract(call.principal, contract_id, call.body, call.now)
    return (201 if created else 200), document


@api.route("/contracts/{contract_id}", methods=["GET"])
def get_contract(call, contract_id):
    return service.get_contract(call.principal, contract_id)


@api.route("/requests", methods=["POST"])
def create_request(call):
    return service.create_request(call.principal, call.body, call.header("idempotency-key"), call.now)


@api.route("/requests", methods=["GET"])
def list_requests(call):
    return service.list_requests(call.principal, call.query, call.now)


@api.route("/requests/{request_id}", methods=["GET"])
def get_request(call, request_id):
    return service.get_request(call.principal, request_id, call.now)


@api.route("/requests/{request_id}/events", methods=["POST"])
def post_event(call, request_id):
    return service.post_event(call.principal, request_id, call.body, call.now)


@api.route("/tokens", methods=["POST"], roles=("admin",))
def issue_token(call):
    return 201, service.issue_token(call.principal, call.body, call.now)


@api.route("/tokens/{token_id}", methods=["DELETE"], roles=("admin",))
def revoke_token(call, token_id):
    auth.revoke_token(token_id)
    return 204, None


@app.schedule(Rate(1, unit=Rate.MINUTES))
def scan_deadlines(event):
    """Every minute: warnings, breach alerts and progress reminders that have come due (§4)."""
    return scanner.scan(datetime.now(timezone.utc)).__dict__
