"""Indexes written on every insert and read by nothing: a foreign key's own index where an index of the model starts
with that key, and PostgreSQL's second index for LIKE on ids looked up only whole (jobs.migration_ops)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from jobs.migration_ops import drop_pattern_index


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_lowercase_emails'),
        ('django_celery_results', '0014_alter_taskresult_status'),
        ('jobs', '0004_published_at_help'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='job',
            name='canceled_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='job',
            name='tenant',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='jobs', to='accounts.tenant'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('canceled_by__isnull', False)), fields=['canceled_by'], name='job_canceled_by_idx'),
        ),
        drop_pattern_index('jobs_job', 'task_id', 'jobs_job_task_id_561b0367_like'),
    ]
