"""The users API: FastAPI on Overcast, portable across clouds.

Run it with ``overcast dev`` from this folder.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

import overcast
from overcast.errors import Conflict
from overcast.http_errors import install

app = overcast.App("users-demo")
users = app.kv("users")
users_cache = app.cache("users-cache")
signups = app.topic("signups")
welcome = app.bucket("welcome")

api = FastAPI(title="users-demo")
install(api)  # Overcast's errors become replies: bad input 422, missing 404, conflict 409, outage 503
app.http(api)
log = logging.getLogger("users-demo")


class User(BaseModel):
    id: str
    name: str
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


@api.post("/users", status_code=201)
async def create_user(user: User) -> User:
    try:
        await users.put(user.id, user.model_dump(), if_absent=True)
    except Conflict:
        raise HTTPException(409, f"user {user.id!r} already exists") from None
    await users_cache.set(user.id, user.model_dump(), ttl=300)
    await signups.publish({"id": user.id, "name": user.name, "email": user.email})
    return user


@api.get("/users/{user_id}")
async def get_user(user_id: str) -> User:
    cached: dict[str, Any] | None = await users_cache.get(user_id)
    if cached is None:
        item = await users.get(user_id)
        if item is None:
            raise HTTPException(404, f"no user {user_id!r}")
        cached = item.value
        await users_cache.set(user_id, cached, ttl=300)
    return User(**cached)


# Not critical: while the bucket is down, signups are parked in the backlog
# signups-send_welcome-deferred and replayed when it answers again (docs/resilience.md).
@app.subscribe(signups, critical=False, depends_on=[welcome])
async def send_welcome(event: overcast.CloudEvent) -> None:
    user = event.data
    text = f"Welcome, {user['name']}! Your account {user['id']} is ready.\n"
    await welcome.put(f"welcome/{user['id']}.txt", text.encode(), content_type="text/plain")


@app.schedule("rate(1 hour)")
async def count_users() -> None:
    count = 0
    async for _ in users.scan():
        count += 1
    log.info("users.count=%d", count)
