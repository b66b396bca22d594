from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from accounts.models import Tenant, User

pytestmark = pytest.mark.django_db


def test_token_for_good_credentials(client, tenant_user):
    response = client.post(
        "/api/auth/token/", {"email": tenant_user.email, "password": "correct-horse-battery"}, "application/json"
    )

    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=tenant_user).key}


@pytest.mark.parametrize("password", ["wrong", ""])
def test_bad_credentials_are_a_400(client, tenant_user, password):
    response = client.post("/api/auth/token/", {"email": tenant_user.email, "password": password}, "application/json")

    assert response.status_code == 400
    assert not Token.objects.exists()


def test_create_tenant_prints_a_working_token_last(client, capsys):
    call_command("create_tenant", "Initech", "--email", "Peter@Initech.example", "--password", "tps-reports-1")

    token = capsys.readouterr().out.strip().splitlines()[-1]
    user = User.objects.get(email="peter@initech.example")
    assert user.tenant == Tenant.objects.get(slug="initech")
    assert not user.is_staff
    assert client.get("/api/tasks/nope/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 404
    assert client.get("/api/tasks/nope/", HTTP_AUTHORIZATION="Token not-a-token").status_code == 401


def test_create_tenant_again_keeps_one_tenant_and_one_token(capsys):
    call_command("create_tenant", "Initech", "--email", "bill@initech.example", "--password", "pw-123456", "--staff")
    first = capsys.readouterr().out.strip().splitlines()[-1]
    call_command("create_tenant", "Initech", "--email", "bill@initech.example", "--password", "pw-7654321")
    second = capsys.readouterr().out.strip().splitlines()[-1]

    assert first == second
    assert Tenant.objects.count() == 1
    user = User.objects.get()
    assert user.is_staff and user.check_password("pw-7654321")


@pytest.mark.parametrize(
    ("name", "email", "password", "message"),
    [
        ("Initech", "peter@initech.example", "", "password must not be empty"),
        ("I" * 201, "peter@initech.example", "pw-123456", "tenant name is 201 characters long; at most 200"),
        ("Initech", f"{'p' * 300}@initech.example", "pw-123456", "email is 316 characters long; at most 254"),
    ],
)
def test_create_tenant_refuses_what_could_not_be_stored_or_used(name, email, password, message):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        call_command("create_tenant", name, "--email", email, "--password", password)

    assert not Tenant.objects.exists() and not User.objects.exists()


def test_logging_in_is_not_case_sensitive_on_the_page_the_admin_and_the_token_api(client, tenant_user):
    typed = tenant_user.email.upper()

    page = client.post("/accounts/login/", {"username": typed, "password": "correct-horse-battery"})
    assert page.status_code == 302 and client.session["_auth_user_id"] == str(tenant_user.pk)

    tenant_user.is_staff = True
    tenant_user.save()
    client.logout()
    admin = client.post("/admin/login/", {"username": typed, "password": "correct-horse-battery"})
    assert admin.status_code == 302 and client.session["_auth_user_id"] == str(tenant_user.pk)

    token = client.post("/api/auth/token/", {"email": typed, "password": "correct-horse-battery"}, "application/json")
    assert token.status_code == 200


def test_a_user_added_in_the_admin_with_capitals_can_log_in_and_a_case_twin_is_a_form_error(client, tenant_user):
    root = User.objects.create_superuser("root@example.com", "root-password-1")
    client.force_login(root)
    form = {"tenant": tenant_user.tenant_id, "password1": "Sufficient-Pass-9", "password2": "Sufficient-Pass-9",
            "usable_password": "true"}  # fmt: skip

    added = client.post("/admin/accounts/user/add/", form | {"email": "Milton@Initech.Example"})
    assert added.status_code == 302, added.context["adminform"].form.errors if added.context else added
    assert User.objects.filter(email="milton@initech.example").exists()
    token = client.post(
        "/api/auth/token/", {"email": "Milton@Initech.Example", "password": "Sufficient-Pass-9"}, "application/json"
    )
    assert token.status_code == 200

    twin = client.post("/admin/accounts/user/add/", form | {"email": "MILTON@initech.example"})
    assert twin.status_code == 200 and "email" in twin.context["adminform"].form.errors
    assert User.objects.filter(email__iexact="milton@initech.example").count() == 1


def test_create_tenant_finds_a_tenant_by_its_name_not_by_a_slug_another_name_shares():
    from django.core.management.base import CommandError

    call_command("create_tenant", "Acme", "--email", "wile@acme.example", "--password", "pw-123456")
    call_command("create_tenant", " ACME ", "--email", "road@acme.example", "--password", "pw-123456")  # the same
    with pytest.raises(CommandError, match="'Acme' already has the slug 'acme' that 'Acme!' makes"):
        call_command("create_tenant", "Acme!", "--email", "mallory@example.com", "--password", "pw-123456")

    assert Tenant.objects.get().name == "Acme"
    assert sorted(User.objects.values_list("email", flat=True)) == ["road@acme.example", "wile@acme.example"]

    Tenant.objects.update(name="Acme Corp")  # renamed in the admin: its slug stays "acme"
    call_command("create_tenant", "Acme Corp", "--email", "coyote@acme.example", "--password", "pw-123456")
    with pytest.raises(CommandError, match="'Acme Corp' already has the slug 'acme' that 'Acme' makes"):
        call_command("create_tenant", "Acme", "--email", "mallory@example.com", "--password", "pw-123456")
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["acme"]
    assert User.objects.filter(tenant__slug="acme").count() == 3


def test_seed_demo_finds_the_demo_tenant_renamed_in_the_admin(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())
    Tenant.objects.filter(slug="demo").update(name="Demo (renamed)")

    call_command("seed_demo", stdout=StringIO())

    assert list(Tenant.objects.values_list("name", flat=True)) == ["Demo (renamed)"]


def test_the_system_tenants_slug_cannot_be_taken_by_a_customer():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="reserved"):
        call_command("create_tenant", "System", "--email", "mallory@example.com", "--password", "pw-123456")

    assert not User.objects.exists()


def test_a_token_reads_as_its_user_with_every_field(api, tenant_user):
    # given the lean token lookup, which reads only what every request needs
    from accounts.authentication import TokenAuthentication

    token = Token.objects.get(user=tenant_user)

    # when a token is checked
    user, auth = TokenAuthentication().authenticate_credentials(token.key)

    # then it is that user, flags as booleans, and the fields it did not read still load on demand
    assert (user.pk, user.tenant_id, user.email) == (tenant_user.pk, tenant_user.tenant_id, tenant_user.email)
    assert (user.is_active, user.is_staff, user.is_superuser) == (True, False, False)
    assert user.date_joined == tenant_user.date_joined and user.check_password("correct-horse-battery")
    assert auth.key == token.key


def test_an_inactive_users_token_is_refused(api, tenant_user):
    User.objects.filter(pk=tenant_user.pk).update(is_active=False)

    response = api.get("/api/tasks/anything/")

    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}


def test_emails_stored_with_capitals_before_are_lowered_unless_that_makes_a_twin(client, tenant_user):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("accounts.migrations.0002_lowercase_emails")
    for email in ("milton@initech.example", "bob@initech.example", "bob2@initech.example"):
        User.objects.create_user(email, f"password-of-{email}", tenant=tenant_user.tenant)
    stored = {"milton@initech.example": "Milton@Initech.Example", "bob2@initech.example": "BOB@initech.example"}
    for email, as_kept in stored.items():  # as the admin kept them
        User.objects.filter(email=email).update(email=as_kept)

    migration.lowercase_emails(apps, None)

    assert sorted(User.objects.exclude(pk=tenant_user.pk).values_list("email", flat=True)) == [
        "BOB@initech.example",  # its lower case is another user's: left for an operator
        "bob@initech.example",
        "milton@initech.example",
    ]

    def token_for(email: str, password: str) -> str | None:
        answer = client.post("/api/auth/token/", {"email": email, "password": password}, "application/json")
        return answer.json().get("token")

    # each logs in: the twin left behind with its email typed as stored, the others however they type it
    assert token_for("MILTON@initech.example", "password-of-milton@initech.example")
    assert token_for("BOB@initech.example", "password-of-bob2@initech.example")
    assert token_for("Bob@Initech.example", "password-of-bob@initech.example")
    assert token_for("BOB@initech.example", "password-of-bob@initech.example") is None  # the twin, not bob


def test_create_tenant_again_with_the_same_password_keeps_the_users_sessions(client, capsys):
    call_command("create_tenant", "Initech", "--email", "bill@initech.example", "--password", "pw-123456")
    client.force_login(User.objects.get())
    hashed = User.objects.get().password

    call_command("create_tenant", "Initech", "--email", "bill@initech.example", "--password", "pw-123456")

    assert User.objects.get().password == hashed  # a new hash of the same password would log the user out
    assert client.get("/api/tasks/nope/").status_code == 404  # the session still holds


def test_trust_x_forwarded_proto_makes_requests_from_the_proxy_https():
    import os
    import subprocess
    import sys

    from tests.conftest import PROJECT_DIR

    def proxy_header(**env: str) -> str:
        code = (
            "import django; django.setup(); from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)"
        )
        environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1", **env}
        return subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, env=environment, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip

    assert proxy_header() == "None"  # off unless said: a client could claim https itself
    assert proxy_header(TRUST_X_FORWARDED_PROTO="1") == "('HTTP_X_FORWARDED_PROTO', 'https')"
