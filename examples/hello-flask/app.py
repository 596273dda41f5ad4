"""The example app Easy Deploy's quickstart deploys."""
import os
import socket

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    greeting = os.environ.get("GREETING", "Hello from Easy Deploy")
    return f"{greeting}! (served by {socket.gethostname()})\n"


@app.get("/healthz")
def healthz():
    return "ok\n"
