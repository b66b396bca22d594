"""Emails are kept in lower case and looked up so at login (accounts.models); before that, a user added in the admin
kept the capitals typed. Lower those, except where that would make a twin of another user's email: those are logged
for an operator to merge or rename, and log in meanwhile with their email typed as stored."""

import logging

from django.db import migrations
from django.db.models.functions import Lower

logger = logging.getLogger(__name__)


def lowercase_emails(apps, schema_editor) -> None:
    User = apps.get_model("accounts", "User")
    taken = set(User.objects.filter(email=Lower("email")).values_list("email", flat=True))
    for user in User.objects.exclude(email=Lower("email")).order_by("pk").only("pk", "email"):
        lowered = user.email.lower()
        if lowered in taken:
            logger.warning("User %s: %s differs from another user's email only in case; left as it is", user.pk,
                           user.email)  # fmt: skip
            continue
        User.objects.filter(pk=user.pk).update(email=lowered)
        taken.add(lowered)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(lowercase_emails, migrations.RunPython.noop)]
