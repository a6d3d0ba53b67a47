from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from exports.selectors.executions import executions_for_user
from governance.selectors.teams import teams_for_user

RECENT_EXECUTIONS = 10


@login_required
def home(request):
    executions = list(executions_for_user(user=request.user).order_by("-created_at", "-id")[:RECENT_EXECUTIONS])
    return render(request, "home.html", {"teams": teams_for_user(user=request.user), "executions": executions})
