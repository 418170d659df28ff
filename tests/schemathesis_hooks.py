"""schemathesis hooks (SCHEMATHESIS_HOOKS=schemathesis_hooks, tests/ on PYTHONPATH) for the run against
`make run`: generated calls name the seeded contract, so that they reach past "no such contract" and
creating a request succeeds often enough for the stateful links (create -> read -> post an event) to
be followed. PUT /contracts/{id} keeps its generated id: it creates contracts beside the seeded one.
Everything else is left as generated, odd values and all."""
import schemathesis

CONTRACT = "demo"  # what scripts/run_local.py seeds
PRIORITY = "high"  # one of its priorities


def _is(context, method, path):
    operation = context.operation
    return operation is not None and (operation.method.upper(), operation.path) == (method, path)


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    if path_parameters and "contract_id" in path_parameters and not _is(context, "PUT", "/contracts/{contract_id}"):
        return {**path_parameters, "contract_id": CONTRACT}
    return path_parameters


@schemathesis.hook
def map_query(context, query):
    if query and "contract_id" in query:
        return {**query, "contract_id": CONTRACT}
    return query


@schemathesis.hook
def map_body(context, body):
    if _is(context, "POST", "/requests") and isinstance(body, dict) and "contract_id" in body:
        return {**body, "contract_id": CONTRACT, "priority": PRIORITY}
    return body
