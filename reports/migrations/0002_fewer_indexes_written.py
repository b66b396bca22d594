"""Indexes written on every insert and read by nothing: a foreign key's own index where an index of the model starts
with that key, and PostgreSQL's second index for LIKE on ids looked up only whole (jobs.migration_ops)."""

import django.db.models.deletion
from django.db import migrations, models

from jobs.migration_ops import drop_pattern_index


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_lowercase_emails'),
        ('reports', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='report',
            name='tenant',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='reports', to='accounts.tenant'),
        ),
        drop_pattern_index('reports_report', 'job_id', 'reports_report_job_id_186aedad_like'),
    ]
