from django.urls import path

from jobs.api import TaskCancelView, TaskStatusView

urlpatterns = [
    path("tasks/<str:task_id>/", TaskStatusView.as_view(), name="task-status"),
    path("tasks/<str:task_id>/cancel/", TaskCancelView.as_view(), name="task-cancel"),
]
