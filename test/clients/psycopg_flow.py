#!/usr/bin/python3
"""test/clients/psycopg_flow.py

The whole app flow with psycopg 3 (Debian's python3-psycopg) as a plain
application role: register, log in, save settings and an API key, add
history, page, search, delete, log out, and the revoked token refused.
Every authenticated step is one transaction that starts with
at_authenticate(%s); every value travels as a bind parameter (psycopg 3
binds on the server).

Run by test/run with the cluster in PGHOST / PGPORT / PGUSER (a
superuser): python3 -m unittest -v psycopg_flow.  The steps run in order
(unittest sorts them by name) and share the class's state.
"""
import json
import os
import unittest
from contextlib import contextmanager

import psycopg
from psycopg import errors
from psycopg.rows import dict_row

DB = "clients_psycopg"
ROLE = "app_psycopg"


def connect(dbname, user=None, autocommit=False):
    return psycopg.connect(
        host=os.environ["PGHOST"], port=os.environ.get("PGPORT", "5432"),
        user=user or os.environ.get("PGUSER", "postgres"), dbname=dbname,
        autocommit=autocommit, row_factory=dict_row,
        application_name="audiotricks-psycopg-flow")


class Flow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.admin = connect("postgres", autocommit=True)
        cls.admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        cls.admin.execute(f"CREATE DATABASE {DB}")
        cls.su = connect(DB, autocommit=True)
        cls.su.execute("CREATE EXTENSION audiotricks CASCADE")
        cls.su.execute(f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
              CREATE ROLE {ROLE} LOGIN;
            END IF; END $$""")
        cls.su.execute(f"GRANT audiotricks_user TO {ROLE}")
        cls.app = connect(DB, user=ROLE, autocommit=True)
        cls.state = {}

    @classmethod
    def tearDownClass(cls):
        for c in (cls.app, cls.su):
            c.close()
        cls.admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        cls.admin.close()

    @contextmanager
    def as_user(self, token=None):
        """One unit of work as the token's user (the stored one by default)."""
        with self.app.transaction():
            row = self.app.execute("SELECT audiotricks.at_authenticate(%s) AS id",
                                   (token or self.state["token"],)).fetchone()
            self.assertEqual(row["id"], self.state["user_id"])
            yield self.app

    def test_01_register(self):
        row = self.app.execute("SELECT audiotricks.at_register(%s, %s, %s) AS id",
                               ("py@example.com", "py", "Psycopg-pass-3")).fetchone()
        self.state["user_id"] = row["id"]
        self.assertEqual(row["id"].version, 7)
        with self.assertRaises(errors.UniqueViolation) as cm:
            self.app.execute("SELECT audiotricks.at_register(%s, %s, %s)",
                             ("PY@example.com", "py2", "Psycopg-pass-3"))
        self.assertEqual(cm.exception.sqlstate, "23505")
        with self.assertRaises(errors.InvalidParameterValue):
            self.app.execute("SELECT audiotricks.at_register(%s, %s, %s)",
                             ("x@example.com", "x", "short"))

    def test_02_login(self):
        row = self.app.execute(
            "SELECT token, user_id, expires_at FROM audiotricks.at_login(%s, %s)",
            ("PY@EXAMPLE.COM", "Psycopg-pass-3")).fetchone()
        self.assertEqual(row["user_id"], self.state["user_id"])
        self.assertEqual(row["token"].count("."), 2)
        self.state["token"] = row["token"]
        with self.assertRaises(errors.InvalidPassword) as cm:
            self.app.execute("SELECT * FROM audiotricks.at_login(%s, %s)", ("py", "Wrong-pass-3"))
        self.assertEqual(cm.exception.sqlstate, "28P01")

    def test_03_settings(self):
        with self.as_user() as c:
            row = c.execute(
                "SELECT * FROM audiotricks.at_update_settings(summary_quality => %s, settings_json => %s)",
                ("detailed", psycopg.types.json.Jsonb({"theme": "dark", "autoSave": True}))).fetchone()
        self.assertEqual(row["summary_quality"], "detailed")
        self.assertEqual(row["settings_json"], {"theme": "dark", "autoSave": True})
        with self.as_user() as c:
            row = c.execute("SELECT * FROM audiotricks.at_get_settings()").fetchone()
        self.assertEqual((row["preferred_language"], row["summary_quality"]), ("en", "detailed"))

    def test_04_api_key(self):
        key = "sk-test-" + os.urandom(12).hex()
        with self.as_user() as c:
            c.execute("SELECT audiotricks.at_set_api_key(%s, %s)", ("openai", key))
        with self.as_user() as c:
            got = c.execute("SELECT audiotricks.at_get_api_key(%s) AS k", ("openai",)).fetchone()["k"]
            none = c.execute("SELECT audiotricks.at_get_api_key(%s) AS k", ("elevenlabs",)).fetchone()["k"]
        self.assertTrue(got == key, "the key reads back")
        self.assertIsNone(none)
        stored = self.su.execute(
            "SELECT openai_api_key_encrypted AS v FROM audiotricks.user_settings").fetchone()["v"]
        self.assertTrue(stored.startswith("at1.") and key not in stored, "stored encrypted")
        with self.assertRaises(errors.InsufficientPrivilege):
            with self.as_user() as c:
                c.execute("SELECT openai_api_key_encrypted FROM audiotricks.user_settings")

    def test_05_history_add(self):
        ids = []
        with self.as_user() as c:
            for i in range(5):
                ids.append(c.execute(
                    "SELECT audiotricks.at_history_add(title => %s, transcript => %s, "
                    "duration_seconds => %s, key_moments => %s) AS id",
                    (f"Meeting {i}", "zebra budget review" if i == 2 else "weekly notes", 60 * i,
                     json.dumps([{"timestamp": "00:00:0%d" % i, "description": "start"}]))).fetchone()["id"])
        self.state["history"] = ids
        with self.assertRaises(errors.CheckViolation):
            with self.as_user() as c:
                c.execute("SELECT audiotricks.at_history_add(title => %s, key_moments => %s)",
                          ("bad", json.dumps([{"timestamp": "1:2", "description": "x"}])))

    def test_06_page(self):
        seen = []
        cursor = None
        with self.as_user() as c:
            # bounded by the row count: a cursor bug that never reaches the
            # end fails here instead of looping forever
            for _ in range(len(self.state["history"]) + 2):
                rows = c.execute("SELECT id, rank, cursor FROM audiotricks.at_history_page(%s, %s)",
                                 (2, cursor)).fetchall()
                if not rows:
                    break
                self.assertTrue(all(r["rank"] is None for r in rows), "a page has no rank")
                seen += [r["id"] for r in rows]
                cursor = rows[-1]["cursor"]
            else:
                self.fail("the walk did not end after %d pages: %r" % (len(self.state["history"]) + 2, seen))
        self.assertEqual(seen, list(reversed(self.state["history"])), "newest first, each once")
        with self.assertRaises(errors.InvalidParameterValue):
            with self.as_user() as c:
                c.execute("SELECT * FROM audiotricks.at_history_page(%s, %s)", (2, cursor[:-1]))

    def test_07_search(self):
        with self.as_user() as c:
            rows = c.execute("SELECT title, rank, cursor FROM audiotricks.at_history_search(%s, %s)",
                             ("zebra budget", 10)).fetchall()
            self.assertEqual([r["title"] for r in rows], ["Meeting 2"])
            self.assertGreater(rows[0]["rank"], 0)
            # the search walked one row at a time: every match of "notes" once
            seen, cursor = [], None
            for _ in range(len(self.state["history"]) + 2):
                page = c.execute("SELECT title, cursor FROM audiotricks.at_history_search(%s, %s, %s)",
                                 ("notes", 1, cursor)).fetchall()
                if not page:
                    break
                seen.append(page[0]["title"])
                cursor = page[0]["cursor"]
            self.assertEqual(sorted(seen), ["Meeting %d" % i for i in (0, 1, 3, 4)])
        with self.assertRaises(errors.InvalidParameterValue):
            with self.as_user() as c:
                c.execute("SELECT * FROM audiotricks.at_history_search(%s, %s, %s)", ("zebra", 1, cursor))

    def test_08_delete(self):
        victim = self.state["history"][0]
        with self.as_user() as c:
            self.assertTrue(c.execute("SELECT audiotricks.at_history_delete(%s) AS ok",
                                      (victim,)).fetchone()["ok"])
            self.assertFalse(c.execute("SELECT audiotricks.at_history_delete(%s) AS ok",
                                       (victim,)).fetchone()["ok"])
            n = c.execute("SELECT audiotricks.at_history_count() AS n").fetchone()["n"]
        self.assertEqual(n, 4)

    def test_09_no_identity_sees_nothing(self):
        with self.app.transaction():
            row = self.app.execute(
                "SELECT audiotricks.at_current_user_id() AS id, "
                "(SELECT count(*) FROM audiotricks.audio_history) AS n").fetchone()
        self.assertEqual((row["id"], row["n"]), (None, 0))
        with self.assertRaises(errors.InsufficientPrivilege) as cm:
            self.app.execute("SELECT * FROM audiotricks.at_history_page()")
        self.assertEqual(str(cm.exception.diag.message_primary), "not authenticated")

    def test_10_logout_and_revoked_token(self):
        row = self.app.execute("SELECT audiotricks.at_logout(%s) AS ok", (self.state["token"],)).fetchone()
        self.assertTrue(row["ok"])
        with self.assertRaises(errors.InvalidAuthorizationSpecification) as cm:
            with self.as_user():
                pass
        self.assertEqual(cm.exception.sqlstate, "28000")
        self.assertEqual(cm.exception.diag.message_primary, "invalid or expired token")


if __name__ == "__main__":
    unittest.main()
