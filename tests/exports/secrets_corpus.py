"""Planted secrets: one fake but well-formed credential of every type the redaction layer must catch, each in
the context it is usually leaked in. Shared by the redaction tests, the bundle acceptance test and
``scripts/redaction_compare.py`` (docs/redaction.md)."""

from __future__ import annotations

# (kind, line as it would be pasted, the secret itself)
PLANTED: list[tuple[str, str, str]] = [
    (
        "openai",
        "OPENAI_API_KEY=sk-Vq3e9LmT2xR8cW1bN6kY5pZ0aH7dJ4fG2sQ9uE3iO8wK1tB5",
        "sk-Vq3e9LmT2xR8cW1bN6kY5pZ0aH7dJ4fG2sQ9uE3iO8wK1tB5",
    ),  # noqa: E501
    (
        "openai_project",
        'client = OpenAI(api_key="sk-proj-4fKq8ZrT1mWx6bNc2LpV9sYh3dGj7eRu0aQi5oPl_zXk-Mn8wE2tB6yC1vH4uJ9")',
        "sk-proj-4fKq8ZrT1mWx6bNc2LpV9sYh3dGj7eRu0aQi5oPl_zXk-Mn8wE2tB6yC1vH4uJ9",
    ),
    (
        "anthropic",
        "anthropic key: sk-ant-api03-Xr7Tq2Lm9Vb4Nc8Wz1Hk6Jp3Ys5Gd0Fe-QaRtYuIoPlMnBvCxZ_1234abcdEFGH5678",
        "sk-ant-api03-Xr7Tq2Lm9Vb4Nc8Wz1Hk6Jp3Ys5Gd0Fe-QaRtYuIoPlMnBvCxZ_1234abcdEFGH5678",
    ),
    ("aws_access_key_id", "aws_access_key_id = AKIAZ4R7T2M9QX6W3B5N", "AKIAZ4R7T2M9QX6W3B5N"),
    (
        "aws_secret_assignment",
        "aws_secret_access_key = q8Zr3Tm1Wx6bNc2LpV9sYh3dGj7eRu0aQi5oPl4K",
        "q8Zr3Tm1Wx6bNc2LpV9sYh3dGj7eRu0aQi5oPl4K",
    ),
    (
        "aws_secret_json",
        '{"aws_secret_access_key": "Hn4Kp9Lq2Wr7Ts1Vx6Yz3Bc8Dg5Fj0M/Qe+Ai9Ou"}',
        "Hn4Kp9Lq2Wr7Ts1Vx6Yz3Bc8Dg5Fj0M/Qe+Ai9Ou",
    ),
    ("github", "token ghp_R7tQ2xM9pL4vK8wZ1nB6cY3hJ5dF0gS2aE7u", "ghp_R7tQ2xM9pL4vK8wZ1nB6cY3hJ5dF0gS2aE7u"),
    ("gitlab", "GITLAB_TOKEN glpat-Xk4Tq9Rm2Wz7Lp1Vb6Nc", "glpat-Xk4Tq9Rm2Wz7Lp1Vb6Nc"),
    (
        "slack",
        "slack bot xoxb-2847561930-4829103756-Qm7Rt2Xk9Lp4Wz1Vb6Nc8Hj",
        "xoxb-2847561930-4829103756-Qm7Rt2Xk9Lp4Wz1Vb6Nc8Hj",
    ),  # noqa: E501
    (
        "stripe",
        "stripe.api_key = 'sk_live_51Hq8ZrT1mWx6bNc2LpV9sYh3dGj7eRu0aQi5'",
        "sk_live_51Hq8ZrT1mWx6bNc2LpV9sYh3dGj7eRu0aQi5",
    ),  # noqa: E501
    ("google", "maps key AIzaSyD4q8Zr3Tm1Wx6bNc2LpV9sYh3dGj7eRu0", "AIzaSyD4q8Zr3Tm1Wx6bNc2LpV9sYh3dGj7eRu0"),
    (
        "azure_storage",
        "DefaultEndpointsProtocol=https;AccountName=labdata;"
        "AccountKey=Zq8Rt3Wm1Xb6Nc2Lp9Vs4Yh7Dg0Je5Ru2Aq8Ti3Ol6Pk1Mz4Wx9Vb3Nc7Lh2Dg5Fj8Kq0Ws6Ye1Rt4Uo9Ip3A==;"
        "EndpointSuffix=core.windows.net",
        "Zq8Rt3Wm1Xb6Nc2Lp9Vs4Yh7Dg0Je5Ru2Aq8Ti3Ol6Pk1Mz4Wx9Vb3Nc7Lh2Dg5Fj8Kq0Ws6Ye1Rt4Uo9Ip3A==",
    ),
    ("generic_secret", 'client_secret: "9fT2qLm8Xr4Wz7Kp1Vb6Nc3Hj5"', "9fT2qLm8Xr4Wz7Kp1Vb6Nc3Hj5"),
    ("generic_token", "API_TOKEN=Qm7Rt2Xk9Lp4Wz1Vb6Nc8HjT3", "Qm7Rt2Xk9Lp4Wz1Vb6Nc8HjT3"),
    ("password", "db password=Tr0ub4dor&3x!", "Tr0ub4dor&3x!"),
]

# The same lines with the secrets replaced by harmless text of the same shape where one exists.
HARMLESS = {kind: line.replace(secret, "not-configured") for kind, line, secret in PLANTED}
