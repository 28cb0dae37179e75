"""Calls a payment API with a key kept as a Runeflow secret (README, "Secrets")."""

import json
import urllib.request

from runeflow import context, workflow


@workflow(name="charge", timeout=30)
def charge(amount: int) -> dict:
    key = context.secret("PAYMENTS_API_KEY")  # asked of the worker now, never cached
    request = urllib.request.Request(
        f"{context.config['PAYMENTS_URL']}/charge?amount={amount}",
        headers={"Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)
    print(f"charged {amount} with key {key}")  # stored as: charged 42 with key ***
    return {"amount": amount, "answer": answer}
