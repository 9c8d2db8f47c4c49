"""Creates and fills a FastAPI Users database with FastAPI Users' own code, for the import tests.

    python make_db.py --layout sqlalchemy|tortoise --url URL --secret SECRET --out users.json

Users are registered through FastAPI Users' UserManager (so their hashes are its real ones: Argon2
by default, one with its bcrypt hasher), provider accounts are added by its oauth_callback, one row
with an address FastAPI Users' schemas would refuse is written through the adapter directly, and a
JWT is issued by its JWTStrategy. The JSON written to --out lists what the tests check.
"""

import argparse
import asyncio
import json
import uuid

from fastapi_users import BaseUserManager, UUIDIDMixin, schemas
from fastapi_users.authentication import JWTStrategy
from fastapi_users.password import PasswordHelper
from pwdlib import PasswordHash
from pwdlib.hashers.bcrypt import BcryptHasher

PEOPLE = [
    # email, password, flags
    ("alice@example.com", "alice-old-password", {"is_verified": True}),
    ("root@example.com", "root-old-password", {"is_superuser": True, "is_verified": True}),
    ("gone@example.com", "gone-old-password", {"is_active": False}),
]
BCRYPT_PERSON = ("bob@example.com", "bob-bcrypt-password")
LINKED = ("alice@example.com", "github", "gh-1001", "gho_alice_access", "ghr_alice_refresh")
PROVIDER_ONLY = ("carol@example.com", "google", "g-2002", "ya29.carol_access")
INVALID_EMAIL = "not-an-address"
LOOK_ALIKES = ["dave@example.com", "\uff44ave@example.com", "Dave@example.com"]


async def rollback(user_db):
    """Ends a failed transaction of the SQLAlchemy adapter (Tortoise needs nothing)."""
    session = getattr(user_db, "session", None)
    if session is not None:
        await session.rollback()


def manager_class(secret):
    class UserManager(UUIDIDMixin, BaseUserManager):
        reset_password_token_secret = secret
        verification_token_secret = secret

    return UserManager


async def fill(user_db, secret, out):
    manager_cls = manager_class(secret)
    manager = manager_cls(user_db)
    report = {"users": [], "jwt": None, "invalid_email_id": None}
    for email, password, flags in PEOPLE:
        user = await manager.create(schemas.BaseUserCreate(email=email, password=password, **flags))
        report["users"].append({"id": str(user.id), "email": email, "password": password, **flags})
    # A user whose hash FastAPI Users' bcrypt hasher wrote (a deployment older than pwdlib's Argon2).
    bcrypt_manager = manager_cls(user_db, PasswordHelper(PasswordHash((BcryptHasher(),))))
    email, password = BCRYPT_PERSON
    user = await bcrypt_manager.create(schemas.BaseUserCreate(email=email, password=password))
    assert user.hashed_password.startswith("$2b$"), user.hashed_password
    report["users"].append({"id": str(user.id), "email": email, "password": password, "bcrypt": True})
    # A provider account linked to a password user, and a user created by a provider sign-in.
    email, name, account_id, access, refresh = LINKED
    await manager.oauth_callback(name, access, account_id, email, expires_at=1999999999,
                                 refresh_token=refresh, associate_by_email=True)
    report["linked"] = {"email": email, "oauth_name": name, "account_id": account_id}
    email, name, account_id, access = PROVIDER_ONLY
    user = await manager.oauth_callback(name, access, account_id, email, is_verified_by_default=True)
    report["provider_only"] = {"id": str(user.id), "email": email, "oauth_name": name,
                               "account_id": account_id}
    # A row FastAPI Users' schemas would refuse, written by the adapter (as old data may hold).
    bad = await user_db.create({"id": uuid.uuid4(), "email": INVALID_EMAIL,
                                "hashed_password": manager.password_helper.hash("x-password"),
                                "is_active": True, "is_superuser": False, "is_verified": False})
    report["invalid_email_id"] = str(bad.id)
    # Look-alikes of one address (a fullwidth letter, another case) that FastAPI Users keeps
    # apart; the lowest id is the look-alike, as an attacker's early sign-up would be.
    # A database whose collation folds case (MySQL's *_ci) refuses some of them itself.
    await manager.create(schemas.BaseUserCreate(email=LOOK_ALIKES[0], password="dave-old-password"))
    report["look_alikes"] = 1
    for n, email in enumerate(LOOK_ALIKES[1:]):
        try:
            await user_db.create({"id": uuid.UUID(int=n + 1), "email": email,
                                  "hashed_password": manager.password_helper.hash("x-password"),
                                  "is_active": True, "is_superuser": False, "is_verified": True})
            report["look_alikes"] += 1
        except Exception as refused:  # the adapter's IntegrityError, whichever driver
            if "Duplicate" not in str(refused) and "UNIQUE" not in str(refused).upper():
                raise
            await rollback(user_db)
    alice = await manager.get_by_email("alice@example.com")
    report["jwt"] = await JWTStrategy(secret=secret, lifetime_seconds=3600).write_token(alice)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)


async def sqlalchemy(url, secret, out):
    from fastapi_users_db_sqlalchemy import (SQLAlchemyBaseOAuthAccountTableUUID,
                                             SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase)
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

    class Base(DeclarativeBase):
        pass

    class OAuthAccount(SQLAlchemyBaseOAuthAccountTableUUID, Base):
        pass

    class User(SQLAlchemyBaseUserTableUUID, Base):
        oauth_accounts: Mapped[list[OAuthAccount]] = relationship("OAuthAccount", lazy="joined")

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        await fill(SQLAlchemyUserDatabase(session, User, OAuthAccount), secret, out)
    await engine.dispose()


async def tortoise(url, secret, out):
    from fastapi_users_tortoise import (TortoiseBaseUserAccountModelUUID,
                                        TortoiseBaseUserOAuthAccountModelUUID, TortoiseUserDatabase)
    from tortoise import Tortoise

    class User(TortoiseBaseUserAccountModelUUID):
        pass

    class OAuthAccount(TortoiseBaseUserOAuthAccountModelUUID):
        pass

    import sys
    module = sys.modules[__name__]
    module.User, module.OAuthAccount = User, OAuthAccount
    await Tortoise.init(db_url=url, modules={"models": [__name__]})
    await Tortoise.generate_schemas()
    try:
        await fill(TortoiseUserDatabase(User, OAuthAccount), secret, out)
    finally:
        await Tortoise.close_connections()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=["sqlalchemy", "tortoise"], required=True)
    parser.add_argument("--url", required=True, help="SQLAlchemy async URL or Tortoise URL")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    run = sqlalchemy if args.layout == "sqlalchemy" else tortoise
    asyncio.run(run(args.url, args.secret, args.out))


if __name__ == "__main__":
    main()
