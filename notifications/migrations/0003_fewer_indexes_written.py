"""Indexes written on every insert and read by nothing: a foreign key's own index where an index of the model starts
with that key, and PostgreSQL's second index for LIKE on ids looked up only whole (jobs.migration_ops)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from jobs.migration_ops import drop_pattern_index


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_lowercase_emails'),
        ('jobs', '0005_fewer_indexes_written'),
        ('notifications', '0002_email_canceled_status'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='outboundemail',
            name='dedupe_key',
            field=models.CharField(blank=True, max_length=200, null=True),
        ),
        migrations.AlterField(
            model_name='outboundemail',
            name='tenant',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='emails', to='accounts.tenant'),
        ),
        migrations.AddConstraint(
            model_name='outboundemail',
            constraint=models.UniqueConstraint(condition=models.Q(('dedupe_key__isnull', False)), fields=('dedupe_key',), name='email_dedupe_key_unique'),
        ),
        drop_pattern_index('notifications_outboundemail', 'job_id', 'notifications_outboundemail_job_id_5334c2c3_like'),
    ]
