"""Profiles (serving/profiles.py, user_routes.py): the SQLite store, `personalign users`, and a server that
decodes each user's requests with their saved preference, where one user's key reaches nobody else's profile."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

from live_server import live_server
from personalign.cli import main
from personalign.commands.serve import offline_learner
from personalign.errors import PersonalignError
from personalign.serving.profiles import MIGRATIONS, ProfileStore, Stated
from test_server import CHAT, alone, assert_openai_error, new_engine


def test_the_store_keeps_users_keys_hashed_and_survives_reopening(tmp_path):
    path = tmp_path / "profiles.db"
    store = ProfileStore(path)
    assert store.version == len(MIGRATIONS)
    key = store.add_user("alice")
    store.add_user("root", admin=True)
    store.set_stated("alice", Stated("concise", None, 1.5, None))
    with pytest.raises(PersonalignError, match="exists already"):
        store.add_user("alice")
    store.close()
    assert key.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())  # only a hash is stored
    again = ProfileStore(path)  # reopening migrates nothing and loses nothing
    assert again.user_for_key(key).name == "alice" and again.user_for_key(key + "x") is None
    assert again.stated("alice") == Stated("concise", None, 1.5, None)
    assert [u.admin for u in again.users()] == [False, True]
    again.remove_user("alice")  # keys and saved preference go with the user
    assert again.user_for_key(key) is None and again.stated("alice") is None
    assert again.integrity() == "ok"
    again.close()


def test_a_newer_schema_is_refused_by_name(tmp_path):
    path = tmp_path / "profiles.db"
    ProfileStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(PersonalignError, match="newer than this personalign knows"):
        ProfileStore(path)


def test_users_command(tmp_path, capsys):
    db = str(tmp_path / "p.db")
    assert main(["users", "add", "alice", "--profiles", db]) == 0
    assert capsys.readouterr().out.startswith("alice: pa-")
    assert main(["users", "set", "alice", "--dims", "concise=0.7,friendly=0.3", "--profiles", db]) == 0
    assert main(["users", "list", "--profiles", db]) == 0
    assert '"dims": {"concise": 0.7, "friendly": 0.3}' in capsys.readouterr().out
    for argv in (["users", "set", "alice", "-p", "concize"], ["users", "remove", "bob"], ["users", "add"],
                 ["users", "set", "alice", "--beta", "-1"], ["users", "add", "two words"]):
        assert main(argv + ["--profiles", db]) == 2
        err = capsys.readouterr().err
        assert err.startswith("personalign: error:") and err.count("\n") == 1


@pytest.fixture
def profiled(models, tmp_path):
    store = ProfileStore(tmp_path / "profiles.db")
    keys = {name: store.add_user(name) for name in ("alice", "bob")}
    keys["root"] = store.add_user("root", admin=True)
    store.set_stated("alice", Stated("concise", None, 2.0, None))
    store.set_stated("bob", Stated(None, {"expert": 1.0}, None, "prompt"))
    with live_server(new_engine(models), store=store, api_key="operator-key") as (url, _):
        yield url, keys
    store.close()


def ask(url, key, **body):
    body = {"messages": [{"role": "user", "content": "Explain how rain forms."}], "max_tokens": 8,
            "temperature": 0} | body
    return httpx.post(url + CHAT, json=body, headers={"Authorization": f"Bearer {key}"})


def test_each_user_decodes_with_their_saved_preference_unless_the_request_names_one(profiled, models):
    url, keys = profiled
    prompt = "Explain how rain forms."
    alice = ask(url, keys["alice"]).json()
    assert alice["personalign"] == {"method": "pad", "preference": "concise", "beta": 2.0}
    assert alice["choices"][0]["message"]["content"] == alone(models, prompt, preference="concise", beta=2.0,
                                                              max_new_tokens=8).text
    bob = ask(url, keys["bob"]).json()
    assert bob["personalign"]["method"] == "prompt" and bob["personalign"]["preference"] == "expert"
    own = ask(url, keys["alice"], preference="friendly").json()  # the request's own preference wins; β still hers
    assert own["personalign"] == {"method": "pad", "preference": "friendly", "beta": 2.0}
    plain = ask(url, keys["alice"], method="base").json()
    assert plain["choices"][0]["message"]["content"] == alone(models, prompt, method="base", max_new_tokens=8).text
    # an app's backend (admin key) answers for its users by the `user` field
    for_bob = ask(url, keys["root"], user="bob").json()
    assert for_bob["personalign"] == bob["personalign"]
    assert ask(url, "operator-key", user="alice").json()["personalign"] == alice["personalign"]
    assert ask(url, "operator-key").json()["personalign"]["method"] == "base"  # no user: plain chat


def test_a_users_key_reaches_no_other_profile_on_any_route(profiled):
    url, keys = profiled
    alice = {"Authorization": f"Bearer {keys['alice']}"}
    forbidden = [("GET", "/v1/users/bob/profile", None), ("PUT", "/v1/users/bob/profile", {"preference": "humor"}),
                 ("GET", "/v1/users", None), ("DELETE", "/v1/users/bob", None)]
    for verb, route, body in forbidden:
        assert_openai_error(httpx.request(verb, url + route, headers=alice, json=body), 403)
    assert_openai_error(ask(url, keys["alice"], user="bob"), 403, "user")
    mine = httpx.get(url + "/v1/users/me/profile", headers=alice).json()
    assert mine == {"user": "alice", "stated": {"preference": "concise", "beta": 2.0},
                    "feedback": {"pairs": 0, "ratings": 0}}
    changed = httpx.put(url + "/v1/users/me/profile", headers=alice, json={"dims": {"friendly": 1}})
    assert changed.json()["stated"] == {"dims": {"friendly": 1}}
    assert_openai_error(httpx.put(url + "/v1/users/me/profile", headers=alice, json={"beta": "high"}), 400)
    assert_openai_error(httpx.put(url + "/v1/users/me/profile", headers=alice, json={"colour": "red"}), 400)
    pair = {"prompt": "Hi", "answers": ["Hello!", "Greetings, human."], "choice": "a"}
    assert_openai_error(httpx.post(url + "/v1/feedback", headers=alice, json=pair | {"user": "bob"}), 403, "user")
    root = {"Authorization": f"Bearer {keys['root']}"}
    assert httpx.post(url + "/v1/feedback", headers=root, json=pair | {"user": "bob"}).json()["user"] == "bob"
    assert httpx.get(url + "/v1/users/bob/profile", headers=root).json()["stated"]["method"] == "prompt"
    names = [u["name"] for u in httpx.get(url + "/v1/users", headers=root).json()["data"]]
    assert names == ["alice", "bob", "root"]
    assert httpx.delete(url + "/v1/users/bob", headers=root).json() == {"name": "bob", "deleted": True}
    assert_openai_error(ask(url, keys["bob"]), 401)  # a removed user's key opens nothing
    assert_openai_error(httpx.get(url + "/v1/users/bob/profile", headers=root), 404)
    assert_openai_error(httpx.get(url + "/v1/users/me/profile", headers={"Authorization": "Bearer operator-key"}),
                        404)
    for key in keys.values():  # keys never come back in an answer
        for route in ("/v1/users", "/v1/users/alice/profile", "/v1/users/me/profile"):
            assert key not in httpx.get(url + route, headers=root).text


def test_feedback_is_stored_per_user_and_bad_events_are_refused(profiled, tmp_path):
    url, keys = profiled
    alice = {"Authorization": f"Bearer {keys['alice']}"}
    pair = {"prompt": "Hi", "answers": ["Hello!", "Greetings, human."], "choice": "tie"}
    rating = {"prompt": "Hi", "answer": "Hello!", "rating": "down"}
    first = httpx.post(url + "/v1/feedback", headers=alice, json=pair).json()
    second = httpx.post(url + "/v1/feedback", headers=alice, json=rating).json()
    assert first["user"] == second["user"] == "alice" and second["id"] > first["id"]
    counts = httpx.get(url + "/v1/users/me/profile", headers=alice).json()["feedback"]
    assert counts == {"pairs": 1, "ratings": 1}
    bad = [(pair | {"choice": "c"}, "choice"), (pair | {"answers": ["one"]}, "answers"), (rating | {"rating": 5},
           "rating"), ({"prompt": "", "answer": "x", "rating": "up"}, "prompt"), (pair | {"extra": 1}, None),
           ([1], None)]
    for body, param in bad:
        assert_openai_error(httpx.post(url + "/v1/feedback", headers=alice, json=body), 400, param)
    operator = {"Authorization": "Bearer operator-key"}
    assert_openai_error(httpx.post(url + "/v1/feedback", headers=operator, json=pair), 400, "user")
    assert_openai_error(httpx.post(url + "/v1/feedback", headers=operator, json=pair | {"user": "carol"}), 404)


def start_server(tiny_model_dir, db):
    """`personalign serve --profiles db` in a child process on a free port: (process, url) once /health answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "personalign.cli", "serve", "--base", tiny_model_dir,
                               "--persrm", "untrained", "--policy", "untrained", "--profiles", str(db),
                               "--port", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError("the server did not start")
            time.sleep(0.2)


def test_acknowledged_feedback_survives_a_kill_9_of_the_server(tiny_model_dir, tmp_path):
    db = tmp_path / "profiles.db"
    store = ProfileStore(db)
    key = store.add_user("alice")
    store.close()
    server, url = start_server(tiny_model_dir, db)
    acknowledged, stop = [], threading.Event()
    answers = ["Short.", "A much longer answer, with many more words in it than the other one has."]

    def client(n):
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            for i in range(10_000):
                if stop.is_set():
                    return
                body = {"prompt": f"q{n}-{i}", "answers": answers, "choice": "ab"[(n + i) % 3 == 0]}
                try:
                    response = http.post(url + "/v1/feedback", json=body)
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    acknowledged.append(response.json()["id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        if server.poll() is None:
            server.kill()
    after = ProfileStore(db)
    events = after.feedback("alice")
    assert after.integrity() == "ok"
    assert set(acknowledged) <= {event_id for event_id, _ in events} and len(acknowledged) >= 40
    after.close()
    server, url = start_server(tiny_model_dir, db)  # restarted, it learns the same weights from the stored events
    try:
        profile = httpx.get(url + "/v1/users/me/profile", headers={"Authorization": f"Bearer {key}"},
                            timeout=60).json()  # it refits from every stored event: slow on a busy machine
    finally:
        server.kill()
        server.wait(timeout=30)
    assert profile["learned"]["choices"] == len(events)
    assert profile["learned"]["weights"] == offline_learner().fit(events, None).weights
