"""Who may reach which mailbox: the dependency every mailbox resource starts with.

Order matters and is the same for each resource: credentials (401, or 429 while locked
out), then the right to this mailbox (403), then the identity values (400), then the
account in Kamailio's database (its uid/did give the store's mailbox).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from media_worker.api.accounts import Account
from media_worker.api.auth import REALM, AuthError, Operator, Principal, User
from media_worker.api.state import api_state
from storage.errors import BadIdentity
from storage.identity import check_mailbox

log = logging.getLogger("voicemail.api")

# Requests that say they come from a script in a page get a challenge a browser does not
# answer with its own login dialog (the page shows its own form instead).
PAGE_HEADER = "x-requested-with"


@dataclass(frozen=True)
class Mailbox:
    """A mailbox a request may use: as the URL names it, and as the store keys it."""

    domain: str  # the SIP domain in the URL
    user: str  # the SIP user in the URL
    store_domain: str  # did, else the domain
    store_user: str  # uid, else the user
    principal: Principal
    account: Account | None  # None: not in Kamailio's database (operators only)

    def __str__(self) -> str:
        return f"{self.user}@{self.domain}"


def challenge(request: Request) -> str:
    scheme = "x-Basic" if request.headers.get(PAGE_HEADER) else "Basic"
    return f'{scheme} realm="{REALM}", charset="UTF-8", Bearer realm="{REALM}"'


async def authenticate(request: Request) -> Principal:
    state = api_state(request)
    source = request.client.host if request.client else "unknown"
    try:
        return await state.authenticator.authenticate(
            request.headers.get("authorization"), source, state.clock()
        )
    except AuthError as exc:
        if exc.status == 429:
            log.warning("api: login locked out from %s: %s", source, exc.reason)
            headers = {"Retry-After": str(exc.retry_after or 1)}
        else:
            if request.headers.get("authorization") is not None:
                log.info("api: login refused from %s: %s", source, exc.reason)
            headers = {"WWW-Authenticate": challenge(request)}
        raise HTTPException(exc.status, exc.reason, headers=headers) from None


async def mailbox_access(
    request: Request,
    principal: Annotated[Principal, Depends(authenticate)],
    domain: Annotated[str, Path(description="SIP domain of the mailbox owner")],
    user: Annotated[str, Path(description="SIP user name of the mailbox owner")],
) -> Mailbox:
    if isinstance(principal, User):
        if (principal.user, principal.domain) != (user, domain):
            raise HTTPException(403, "this is not your mailbox")
    elif isinstance(principal, Operator) and not principal.token.allows(domain):
        raise HTTPException(403, f"token {principal.token.name} is not for domain {domain}")
    try:
        check_mailbox(domain, user)
    except BadIdentity as exc:
        raise HTTPException(400, str(exc)) from None
    state = api_state(request)
    account = await state.accounts.account(user, domain) if state.accounts else None
    if account is None and isinstance(principal, User):
        # Deleted between the password check and now.
        raise HTTPException(403, "this is not your mailbox")
    store_domain, store_user = account.mailbox if account else (domain, user)
    try:
        check_mailbox(store_domain, store_user)
    except BadIdentity as exc:
        raise HTTPException(400, f"the account's uid/did: {exc}") from None
    if (store_domain, store_user) != (domain, user):
        state.learn_address((store_domain, store_user), (user, domain))
    return Mailbox(domain, user, store_domain, store_user, principal, account)


MailboxAccess = Annotated[Mailbox, Depends(mailbox_access)]
