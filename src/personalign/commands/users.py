"""`personalign users`: the profile database's users, their keys and saved preferences.

    personalign users add alice                 # prints alice's API key, once (only its hash is kept)
    personalign users add ops --admin           # an admin key manages every user over HTTP
    personalign users set alice -p concise --beta 1.5
    personalign users list
    personalign users remove alice              # with her keys, saved preference and feedback
"""

import json
import sys

from ..preferences import parse_dims
from ..serving.profiles import ProfileStore, default_db
from ..serving.http_errors import ApiError
from ..errors import PersonalignError


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("add", "list", "remove", "set"),
                        help="add a user (prints their key), list users, remove one, set their saved preference")
    parser.add_argument("name", nargs="?", help="the user (add, remove, set)")
    parser.add_argument("--profiles", default=str(default_db()),
                        help="the profile database (default: $PERSONALIGN_HOME/profiles.db); serve reads it with "
                             "--profiles")
    parser.add_argument("--admin", action="store_true", help="add: the user manages every user")
    parser.add_argument("-p", "--preference", help="set: the user's preference (free text or a catalog name)")
    parser.add_argument("--dims", help="set: a weighted mix, e.g. concise=0.7,friendly=0.3")
    parser.add_argument("--beta", type=float, help="set: the guidance strength")
    parser.add_argument("--method", help="set: the decoding method")


def run(args) -> int:
    if args.action != "list" and not args.name:
        raise PersonalignError(f"users {args.action} needs a NAME")
    stated = None
    if args.action == "set":  # checked before the database is touched
        dims = dict(parse_dims(args.dims)) if args.dims else None
        body = {"preference": args.preference, "dims": dims, "beta": args.beta, "method": args.method}
        try:
            from ..serving.user_routes import stated_from  # FastAPI: loaded only when a user is added
            stated = stated_from({k: v for k, v in body.items() if v is not None})
        except ApiError as error:
            raise PersonalignError(error.message) from None
    store = ProfileStore(args.profiles)
    try:
        if args.action == "add":
            key = store.add_user(args.name, admin=args.admin)
            print(f"{args.name}: {key}")
            print("personalign: the key is shown once; keep it (only its hash is stored)", file=sys.stderr)
        elif args.action == "remove":
            store.remove_user(args.name)
        elif args.action == "set":
            store.set_stated(args.name, stated)
            print(json.dumps({"user": args.name, "stated": stated.fields()}))
        else:
            for user in store.users():
                stated_now = store.stated(user.name)
                print(json.dumps({"user": user.name, "admin": user.admin,
                                  "stated": stated_now.fields() if stated_now else {}}))
    finally:
        store.close()
    return 0

