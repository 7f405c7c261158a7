"""Profiles over HTTP: who a request acts for, the profile it decodes with, and the routes that read and write
profiles. A user's key acts for that user only; an admin key (a profile marked admin, or the server's own
--api-key) manages every user and may answer for any of them through a request's `user` field, as an app's backend
does for its users. Keys never appear in answers: new keys come from `personalign users add` alone.

    GET  /v1/users/me/profile        PUT /v1/users/me/profile        (the key's own user)
    GET  /v1/users                   DELETE /v1/users/{name}          (admin)
    GET  /v1/users/{name}/profile    PUT /v1/users/{name}/profile     (admin, or that user)
    POST /v1/feedback                POST /v1/feedback/suggest        (the key's user; admin: any, by `user`)
"""

from fastapi import FastAPI, Request

from ..decoding import methods
from ..errors import PersonalignError
from ..validation import check_beta
from .http_errors import ApiError
from .json_body import read_json
from .openai_protocol import parse_preference
from .middleware import IDENTITY, OPERATOR
from .preference_learner import LearnedWeights, PreferenceLearner
from .profiles import Feedback, ProfileStore, Stated, User

PERSONAL_FIELDS = ("preference", "dims", "beta", "method")


def identity(request: Request) -> User | None:
    """The user whose key came with the request (None: a server without keys)."""
    return request.scope.get(IDENTITY)


class Profiles:
    """The store, and (when the server learns) each user's weights fitted from their feedback, refitted when their
    events or stated preference change."""

    def __init__(self, store: ProfileStore, learner: PreferenceLearner | None = None):
        self.store, self.learner = store, learner
        self._fits: dict[str, tuple[tuple, LearnedWeights]] = {}

    def learned(self, name: str) -> LearnedWeights | None:
        if self.learner is None:
            return None
        stated = self.store.stated(name) or Stated()
        version = (self.store.feedback_version(name), stated)  # a request reads no events unless they changed
        if name not in self._fits or self._fits[name][0] != version:
            self._fits[name] = (version, self.learner.fit(self.store.feedback(name), stated.dims))
        return self._fits[name][1]

    def decoding_fields(self, name: str) -> dict:
        """What a request of `name` decodes with unless it says otherwise: the saved fields, the preference and
        dims replaced by the learned mix once the user has given feedback."""
        stated = self.store.stated(name) or Stated()
        fields = stated.fields()
        learned = self.learned(name)
        if learned is not None and learned.choices and learned.as_dims():
            fields.pop("preference", None)
            fields["dims"] = learned.as_dims()
        return fields

    def view(self, name: str) -> dict:
        if self.store.user(name) is None:
            raise ApiError(404, f"no user {name!r}", code="user_not_found")
        stated = self.store.stated(name) or Stated()
        events = [event.kind for _, event in self.store.feedback(name)]
        view = {"user": name, "stated": stated.fields(),
                "feedback": {"pairs": events.count("pair"), "ratings": events.count("rating")}}
        learned = self.learned(name)
        if learned is not None:
            view["learned"] = {"weights": learned.weights, "choices": learned.choices, "dims": learned.as_dims(),
                               "features": self.learner.features}
        return view


def with_profile(body, who: User | None, profiles: Profiles | None) -> dict:
    """The request body with the acting user's profile filling the personalization fields it leaves out (a
    request that names a preference or dims brings its own, and takes neither from the profile)."""
    if not isinstance(body, dict) or profiles is None:
        return body
    name = acting_user(who, body.get("user"), required=False)
    saved = profiles.decoding_fields(name) if name else {}
    if "preference" in body or "dims" in body:
        saved.pop("preference", None)
        saved.pop("dims", None)
    return saved | {k: v for k, v in body.items() if v is not None}


def add_user_routes(app: FastAPI, profiles: Profiles, max_body_bytes: int) -> None:
    store = profiles.store

    @app.get("/v1/users/me/profile")
    async def my_profile(request: Request):
        return profiles.view(_me(request).name)

    @app.put("/v1/users/me/profile")
    async def set_my_profile(request: Request):
        return _set_profile(_me(request).name, await read_json(request, max_body_bytes))

    @app.get("/v1/users")
    async def list_users(request: Request):
        _admin(request)
        return {"object": "list", "data": [{"name": u.name, "admin": u.admin, "created": int(u.created)}
                                           for u in store.users()]}

    @app.delete("/v1/users/{name}")
    async def remove_user(name: str, request: Request):
        _admin(request)
        try:
            store.remove_user(name)
        except PersonalignError as error:
            raise ApiError(404, str(error), code="user_not_found") from None
        return {"name": name, "deleted": True}

    @app.get("/v1/users/{name}/profile")
    async def user_profile(name: str, request: Request):
        _self_or_admin(request, name)
        return profiles.view(name)

    @app.put("/v1/users/{name}/profile")
    async def set_user_profile(name: str, request: Request):
        _self_or_admin(request, name)
        return _set_profile(name, await read_json(request, max_body_bytes))

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        body = await read_json(request, max_body_bytes)
        event = feedback_from(body)
        name = acting_user(identity(request), body.get("user"), required=True)
        if store.user(name) is None:
            raise ApiError(404, f"no user {name!r}", param="user", code="user_not_found")
        event_id = store.add_feedback(name, event)
        return {"object": "feedback", "id": event_id} | profiles.view(name)

    @app.post("/v1/feedback/suggest")
    async def suggest(request: Request):
        body = await read_json(request, max_body_bytes)
        if not isinstance(body, dict) or set(body) - {"prompt", "answers", "user"}:
            raise ApiError(400, "a suggestion request is {prompt, answers: [two to sixteen texts]}")
        answers = body.get("answers")
        if not isinstance(answers, list) or not 2 <= len(answers) <= 16 or not all(isinstance(a, str)
                                                                                    for a in answers):
            raise ApiError(400, "answers must be a list of two to sixteen texts", param="answers")
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            raise ApiError(400, "prompt must be non-empty text", param="prompt")
        name = acting_user(identity(request), body.get("user"), required=True)
        if store.user(name) is None:
            raise ApiError(404, f"no user {name!r}", param="user", code="user_not_found")
        if profiles.learner is None:
            raise ApiError(404, "this server learns no preferences", code="not_learning")
        i, j, p = profiles.learner.suggest(profiles.learned(name), body["prompt"], answers)
        return {"object": "feedback.suggestion", "user": name, "pair": [i, j], "p_first_wins": round(p, 4)}

    def _set_profile(name: str, body) -> dict:
        if store.user(name) is None:
            raise ApiError(404, f"no user {name!r}", code="user_not_found")
        store.set_stated(name, stated_from(body))
        return profiles.view(name)


def stated_from(body) -> Stated:
    """A saved preference from a JSON body, checked as a request's fields are."""
    if not isinstance(body, dict) or set(body) - set(PERSONAL_FIELDS):
        raise ApiError(400, f"a profile is a JSON object of {', '.join(PERSONAL_FIELDS)}")
    if isinstance(body.get("dims"), str):  # saved as weights: the learner's prior reads them by name
        raise ApiError(400, 'dims must be an object of weights, e.g. {"concise": 0.7, "friendly": 0.3}',
                       param="dims")
    parse_preference(body)
    try:
        if body.get("beta") is not None:
            check_beta(body["beta"])
        if body.get("method") is not None:
            if not isinstance(body["method"], str):
                raise PersonalignError("method must be a string")
            methods.get(body["method"])
    except PersonalignError as error:
        raise ApiError(400, str(error)) from None
    return Stated(body.get("preference"), body.get("dims"), body.get("beta"), body.get("method"))


def feedback_from(body) -> Feedback:
    """A pairwise choice {prompt, answers: [a, b], choice: a|b|tie} or a rating {prompt, answer, rating: up|down}."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    pair = "answers" in body
    known = {"prompt", "answers", "choice", "user"} if pair else {"prompt", "answer", "rating", "user"}
    if set(body) - known:
        raise ApiError(400, f"unknown field(s) {', '.join(sorted(set(body) - known))}; feedback is "
                            "{prompt, answers: [a, b], choice: a|b|tie} or {prompt, answer, rating: up|down}")
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        raise ApiError(400, "prompt must be non-empty text", param="prompt")
    if pair:
        answers = body["answers"]
        if not isinstance(answers, list) or len(answers) != 2 or not all(isinstance(a, str) for a in answers):
            raise ApiError(400, "answers must be a list of two texts", param="answers")
        if body.get("choice") not in ("a", "b", "tie"):
            raise ApiError(400, 'choice must be "a", "b" or "tie"', param="choice")
        return Feedback("pair", body["prompt"], answers[0], answers[1], body["choice"])
    if not isinstance(body.get("answer"), str):
        raise ApiError(400, "answer must be text (or send answers: [a, b] with a choice)", param="answer")
    if body.get("rating") not in ("up", "down"):
        raise ApiError(400, 'rating must be "up" or "down"', param="rating")
    return Feedback("rating", body["prompt"], body["answer"], None, body["rating"])


def acting_user(who: User | None, named, required: bool) -> str | None:
    """Whom a request is for: the key's own user, or for admin and operator keys (and a server without keys) the
    user it names; None when it names none and none is `required`."""
    if named is not None and not isinstance(named, str):
        raise ApiError(400, "user must be a string", param="user")
    if who is not None and not who.admin:
        if named not in (None, who.name):
            raise ApiError(403, "a user's key acts for that user only", param="user", code="forbidden")
        return who.name
    if named is None and who is not None and who is not OPERATOR:
        return who.name  # an admin user acting for themself
    if named is None and required:
        raise ApiError(400, "name the user this is for (user)", param="user")
    return named


def _me(request: Request) -> User:
    who = identity(request)
    if who is None or who is OPERATOR:
        raise ApiError(404, "this key belongs to no user profile (the server's own --api-key is an operator's)",
                       code="user_not_found")
    return who


def _admin(request: Request) -> None:
    who = identity(request)
    if who is not None and not who.admin:
        raise ApiError(403, "this route needs an admin key", code="forbidden")


def _self_or_admin(request: Request, name: str) -> None:
    who = identity(request)
    if who is not None and not who.admin and who.name != name:
        raise ApiError(403, "a user's key reads and writes its own profile only", code="forbidden")
