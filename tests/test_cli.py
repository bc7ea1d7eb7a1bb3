"""The command line through its entry point (no subprocess): help, errors, exit codes."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from chatbot.cli import main
from chatbot.config import REPO_ROOT


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), stdout=out), out.getvalue()


def test_module_help_works_as_installed():
    proc = subprocess.run(
        [sys.executable, "-m", "chatbot", "--help"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert proc.returncode == 0
    for command in ("build", "search", "chat", "serve", "feedback", "bench"):
        assert command in proc.stdout


def test_bm25_search_needs_no_model(tmp_path, monkeypatch):
    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    code, out = run("search", "pièces pour le solde DUI PDE", "--mode", "bm25", "--k", "3")
    assert code == 0 and out.count("ans-") == 3


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["search", "x", "--mode", "bm25", "--facet", "couloir=Cardiologie"], "Hôpital"),
        (["search", "x", "--mode", "bm25", "--facet", "region=Occitanie"], "thematique"),
        (["search", "x", "--mode", "bm25", "--facet", "couloir"], "NOM=VALEUR"),
        (["search", "x", "--mode", "bm25", "--k", "0"], "k doit"),
        (["search", "--mode", "bm25"], "--queries"),
    ],
)
def test_errors_are_one_clear_line_and_exit_1(argv, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    code, _ = run(*argv)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("Erreur : ") and err.count("\n") == 1 and needle in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    from chatbot.errors import InputError

    with pytest.raises(InputError):
        main(["--debug", "search", "x", "--mode", "bm25", "--facet", "couloir=Cardiologie"])


def test_read_only_search_refuses_a_missing_index_and_says_how_to_build(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FAQBOT_MODEL", "fake")
    code, _ = run("search", "montant SAS")
    assert code == 1 and "python -m chatbot build" in capsys.readouterr().err


def test_unknown_hub_model_fails_fast_with_advice(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    code, _ = run("build", "--model", "someone/not-a-local-model")
    err = capsys.readouterr().err
    assert code == 1 and "FAQBOT_MODEL" in err and "Traceback" not in err


def test_unknown_backend_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FAQBOT_BACKEND", "gpu")
    code, _ = run("build")
    err = capsys.readouterr().err
    assert code == 1 and "FAQBOT_BACKEND='gpu'" in err and "torch, onnx" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("command", "module"), [("calibrate", "sklearn"), ("bench", "psutil")])
def test_measurement_commands_name_the_extra_to_install_when_it_is_missing(
    command, module, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: find_spec gives None
    code, _ = run(command)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert module in err and "pip install -e '.[eval]'" in err


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        # An operator's trial: each was accepted, or ended in a traceback.
        ({"FAQBOT_REDIS_URL": "redis://:pw@127.0.0.1:notaport/0"}, "FAQBOT_REDIS_URL"),
        ({"FAQBOT_REDIS_URL": "redis://127.0.0.1:6379/zero"}, "FAQBOT_REDIS_URL"),
        (
            {"FAQBOT_DATABASE_URL": "host=127.0.0.1 user=faqbot password=Sup3rS3cret dbname=f"},
            "password=***",
        ),
        ({"FAQBOT_SESSION_TTL_SECONDS": "0"}, "FAQBOT_SESSION_TTL_SECONDS"),
        ({"FAQBOT_SESSION_TTL_SECONDS": "-5"}, "FAQBOT_SESSION_TTL_SECONDS"),
        ({"FAQBOT_MAX_SESSIONS": "0"}, "FAQBOT_MAX_SESSIONS"),
        ({"FAQBOT_RATE_LIMIT_PER_MINUTE": "-3"}, "FAQBOT_RATE_LIMIT_PER_MINUTE"),
        ({"FAQBOT_SECRET_KEY": "x"}, "FAQBOT_SECRET_KEY"),
    ],
)
def test_a_bad_server_setting_stops_the_start_in_one_french_line(
    env, needle, tmp_path, monkeypatch, capsys
):
    from evaluation.server_process import free_port

    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _ = run("serve", "--no-ui", "--mode", "bm25", "--port", str(free_port()))
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("Erreur : ") and needle in err, err
    assert "Traceback" not in err and "Sup3rS3cret" not in err and ":pw@" not in err


def test_an_unreachable_redis_stops_the_start_instead_of_serving_without_memory(
    tmp_path, monkeypatch, capsys
):
    # A mistyped port used to give one log line, then « Prêt », and every clarification lost.
    from evaluation.server_process import free_port

    monkeypatch.setenv("FAQBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FAQBOT_REDIS_URL", f"redis://:secretpw@127.0.0.1:{free_port()}/0")
    code, _ = run("serve", "--no-ui", "--mode", "bm25", "--port", str(free_port()))
    err = capsys.readouterr().err
    assert code == 1 and "Redis injoignable" in err and "FAQBOT_REDIS_URL" in err
    assert "secretpw" not in err and "Traceback" not in err


def test_an_option_is_its_whole_name_not_an_abbreviation(capsys):
    # « serve --mode bm25 » was read as « --model bm25 » and reported as a missing model.
    with pytest.raises(SystemExit) as stop:
        main(["serve", "--mod", "bm25"])
    assert stop.value.code == 2
    assert "--mod" in capsys.readouterr().err


def test_a_port_in_use_and_an_address_not_this_machines_get_their_own_advice():
    # An operator's trial: « --host 10.9.9.9 » was told its port was perhaps in use.
    import socket

    from chatbot.errors import ConfigError
    from chatbot.web.serve import check_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match="déjà utilisé.*--port"):
            check_port("127.0.0.1", port)
    with pytest.raises(ConfigError, match="pas une adresse de cette machine.*--host"):
        check_port("10.9.9.9", port)  # a private address this machine does not have
