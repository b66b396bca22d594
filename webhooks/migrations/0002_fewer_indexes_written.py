"""Indexes written on every insert and read by nothing: a foreign key's own index where an index of the model starts
with that key, and PostgreSQL's second index for LIKE on ids looked up only whole (jobs.migration_ops)."""

import django.db.models.deletion
from django.db import migrations, models

from jobs.migration_ops import drop_pattern_index


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_lowercase_emails'),
        ('webhooks', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='webhookevent',
            name='source',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='events', to='webhooks.webhooksource'),
        ),
        migrations.AlterField(
            model_name='webhookevent',
            name='tenant',
            field=models.ForeignKey(blank=True, db_index=False, help_text="who the event is about, when known (the source's tenant, or e.g. billing's data.tenant)", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='webhook_events', to='accounts.tenant'),
        ),
        drop_pattern_index('webhooks_webhookevent', 'job_id', 'webhooks_webhookevent_job_id_bcd55e53_like'),
    ]
