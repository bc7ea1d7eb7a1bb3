"""DialogueState's versioned serialisation: what a shared session store (Redis) keeps.

States come from real dialogue steps on the scripted search of test_dialogue.py.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chatbot import messages as msg
from chatbot.dialogue import DialogueState, Pending
from chatbot.errors import FaqBotError, SessionStateError
from chatbot.stores import state_from_json, state_to_json
from tests.test_dialogue import DUI, SAS, ambiguous, make


def follow_ups(query, facets, boost):
    if "solde" in query and boost.get("couloir") == DUI.facets["couloir"]:
        return [(DUI, 0.9, 0.9), (SAS, 0.7, 0.5)]
    if "pièces" in query:
        return ambiguous(query, facets, boost)
    return [(DUI, 0.9, 0.9)]


def conversation() -> list[DialogueState]:
    """Every state of a conversation: an answer, a follow-up, a clarification, a pick, a reset."""
    d, _ = make(follow_ups)
    states = [DialogueState()]
    for message in (
        "qui signe la VA du DUI protection de l'enfance ?",
        "et pour le solde ?",
        "nouvelle question",
        "pièces pour le solde ?",  # a clarification: the state holds a Pending
        DUI.facets["couloir"],
        "bonjour",
    ):
        _, state = d.step(message, states[-1])
        states.append(state)
    return states


def test_every_state_of_a_conversation_survives_a_round_trip_through_json():
    states = conversation()
    assert any(s.pending for s in states) and any(s.facets for s in states)
    assert any(s.history for s in states) and any(s.last_query for s in states)
    for state in states:
        data = state.to_dict()
        assert data["v"] == DialogueState.VERSION == 2
        assert DialogueState.from_dict(data) == state
        assert DialogueState.from_dict(json.loads(json.dumps(data))) == state
        assert state_from_json(state_to_json(state)) == state
        assert state_from_json(state_to_json(state).encode()) == state  # Redis returns bytes


def test_a_restored_pending_clarification_continues_the_dialogue_identically():
    d, _ = make(ambiguous)
    reply, state = d.step("pièces pour le solde ?", DialogueState())
    assert reply.type == "clarify" and isinstance(state.pending, Pending)
    restored = state_from_json(state_to_json(state))
    for answer in (DUI.facets[reply.facet], "c'est pour un EHPAD", msg.OTHER_OPTION):
        assert d.step(answer, restored) == d.step(answer, state)


def test_the_stored_form_is_plain_json_with_named_fields():
    _, state = make(ambiguous)[0].step("pièces pour le solde ?", DialogueState())
    data = json.loads(state_to_json(state))
    assert set(data) == {"v", "facets", "pending", "last_query", "turns", "history", "answered_at"}
    assert set(data["pending"]) == {"query", "facet", "options", "filters", "asked"}
    assert data["pending"]["query"] == "pièces pour le solde ?" and data["turns"] == 1


def broken(**changes) -> dict:
    _, state = make(ambiguous)[0].step("pièces pour le solde ?", DialogueState())
    data = state.to_dict()
    for key, value in changes.items():
        if key.startswith("pending_"):
            data["pending"][key.removeprefix("pending_")] = value
        elif value is KeyError:
            del data[key]
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (broken(v=3), "version 3 inconnue"),
        (broken(v=True), "version True inconnue"),
        (broken(v=KeyError), "version None inconnue"),
        (broken(v="1"), "version '1' inconnue"),
        (broken(v=[1]), "version [1] inconnue"),  # unhashable: refused, not a TypeError
        (broken(v={}), "attendue : 1 ou 2"),
        (broken(v=2.0), "version 2.0 inconnue"),
        (broken(answered_at=KeyError), "clés"),  # version 2 has it
        (broken(answered_at=-1), "answered_at"),
        (broken(answered_at=99), "answered_at"),  # a turn not played yet
        ([], "version None inconnue"),
        (None, "version None inconnue"),
        (broken(turns=-1), "turns"),
        (broken(turns=True), "turns"),
        (broken(turns="3"), "turns"),
        (broken(history="ans-000-01"), "history"),
        (broken(history=[1]), "history"),
        (broken(facets=[["couloir"]]), "facets"),
        (broken(facets=[[3, "Bretagne"]]), "facets"),
        (broken(last_query=3), "last_query"),
        (broken(extra="x"), "clés"),
        (broken(last_query=KeyError), "clés"),
        (broken(pending="oui"), "pending"),
        (broken(pending_facet=""), "pending.facet"),
        (broken(pending_options=None), "pending.options"),
        (broken(pending_filters=[["couloir", None]]), "pending.filters"),
        (broken(pending_asked=1.5), "pending.asked"),
    ],
)
def test_an_unknown_version_or_malformed_state_is_one_clear_error(data, says):
    with pytest.raises(SessionStateError, match="État de conversation illisible") as caught:
        DialogueState.from_dict(data)
    assert says in str(caught.value)
    assert isinstance(caught.value, FaqBotError)


@pytest.mark.parametrize("raw", ["", "{", "null", '"texte"', b"\xff\xfe", "[1, 2]"])
def test_text_that_is_no_stored_state_is_one_clear_error(raw):
    with pytest.raises(SessionStateError, match="État de conversation illisible"):
        state_from_json(raw)


@pytest.mark.parametrize(
    "changes",
    [{"facets": [["région", "Bretagne"]]}, {"pending_facet": "ancienne facette"}],
)
def test_a_state_naming_a_facet_the_vocabulary_lacks_is_refused_by_the_dialogue(changes):
    d, _ = make(ambiguous)
    state = DialogueState.from_dict(broken(**changes))  # well-formed, but from another vocabulary
    with pytest.raises(SessionStateError, match="inconnue"):
        d.check_state(state)
    d.check_state(DialogueState.from_dict(broken()))  # today's facets pass


def test_a_version_1_state_is_read_with_no_answer_known():
    # Sessions written before answered_at existed (a store shared during an upgrade)
    # continue: their turn of last answer is unknown, so no follow-up leans on it.
    d = make(ambiguous)[0]
    _, state = d.step("pièces pour le solde ?", DialogueState())
    _, state = d.step(DUI.facets["couloir"], state)  # answered at turn 2
    assert state.answered_at == state.turns == 2
    data = state.to_dict()
    del data["answered_at"]
    data["v"] = 1
    assert DialogueState.from_dict(data) == replace(state, answered_at=0)
    data["answered_at"] = 3  # version 1 had no such field: not a version 1 state
    with pytest.raises(SessionStateError):
        DialogueState.from_dict(data)
