"""Writes a FastAPI Users SQLAlchemy-layout SQLite database of N users directly in SQL, for timing
the import (docs/migrating-from-fastapi-users.md). The hashes are copied from a database that
make_db.py filled with FastAPI Users' own code (half Argon2, half bcrypt), so every row looks like
one FastAPI Users wrote; one user in ten has a provider account.

    python3 make_large_db.py --from small.db --out large.db --users 100000
"""

import argparse
import sqlite3
import uuid

DDL = """
CREATE TABLE user (id CHAR(36) NOT NULL, email VARCHAR(320) NOT NULL, hashed_password VARCHAR(1024) NOT NULL,
  is_active BOOLEAN NOT NULL, is_superuser BOOLEAN NOT NULL, is_verified BOOLEAN NOT NULL, PRIMARY KEY (id));
CREATE UNIQUE INDEX ix_user_email ON user (email);
CREATE TABLE oauth_account (id CHAR(36) NOT NULL, user_id CHAR(36) NOT NULL, oauth_name VARCHAR(100) NOT NULL,
  access_token VARCHAR(1024) NOT NULL, expires_at INTEGER, refresh_token VARCHAR(1024), account_id VARCHAR(320) NOT NULL,
  account_email VARCHAR(320) NOT NULL, PRIMARY KEY (id), FOREIGN KEY(user_id) REFERENCES user (id) ON DELETE cascade);
CREATE INDEX ix_oauth_account_oauth_name ON oauth_account (oauth_name);
CREATE INDEX ix_oauth_account_account_id ON oauth_account (account_id);
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    small = sqlite3.connect(args.source)
    argon2 = small.execute("SELECT hashed_password FROM user WHERE hashed_password LIKE '$argon2id$%'").fetchone()[0]
    bcrypt = small.execute("SELECT hashed_password FROM user WHERE hashed_password LIKE '$2b$%'").fetchone()[0]
    db = sqlite3.connect(args.out)
    db.executescript(DDL)
    users, accounts = [], []
    for n in range(args.users):
        uid = str(uuid.uuid4())
        users.append((uid, f"user{n}@example.com", argon2 if n % 2 else bcrypt, 1, 0, n % 3 == 0))
        if n % 10 == 0:
            accounts.append((str(uuid.uuid4()), uid, "github", f"gho_{n}", 1999999999, None, str(n),
                             f"user{n}@example.com"))
    db.executemany("INSERT INTO user VALUES (?, ?, ?, ?, ?, ?)", users)
    db.executemany("INSERT INTO oauth_account VALUES (?, ?, ?, ?, ?, ?, ?, ?)", accounts)
    db.commit()
    print(f"{len(users)} users, {len(accounts)} provider accounts in {args.out}")


if __name__ == "__main__":
    main()
