"""The reference's daily-call: greeter -> meal -> feedback, handoffs and a collect tool."""

from __future__ import annotations

import httpx

from agent_studio.calls.states import EndReason
from agent_studio.runtime import RuntimeDeps
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.factories import create_workflow
from tests.runtime.conftest import agent, call_view, runner_for, start, transcript

SAVE_MEAL = {
    "type": "collect",
    "name": "save_meal",
    "description": "Save what the user ate",
    "parameters": {
        "type": "object",
        "properties": {"meal_type": {"type": "string"}, "food": {"type": "string"}},
    },
}


async def daily_call(client: httpx.AsyncClient, fake: FakeOpenAI) -> None:
    await agent(
        client,
        fake,
        "greeter-agent",
        instructions="Greet {{ user.name }} warmly.",
        greeting="Hello {{ user.name }}! How are you today?",
    )
    await agent(
        client,
        fake,
        "meal-agent",
        instructions="Ask {{ user.name }} what they ate.",
        tools=[SAVE_MEAL],
    )
    await agent(
        client,
        fake,
        "feedback-agent",
        instructions="Ask for feedback.",
        greeting="One last thing: how was your day?",
    )
    await create_workflow(
        client,
        "daily-call",
        ["greeter-agent", "meal-agent", "feedback-agent"],
        handoffs=[
            {"from": "greeter-agent", "to": "meal-agent", "description": "After greeting"},
            {"from": "meal-agent", "to": "feedback-agent", "description": "After meals"},
        ],
    )


async def test_handoffs_switch_agents_and_new_instructions_apply_at_once(
    client: httpx.AsyncClient, fake_llm: FakeOpenAI, deps: RuntimeDeps
) -> None:
    await daily_call(client, fake_llm)
    call_id = await start(client, "daily-call")
    runner = runner_for(call_id, deps)
    await runner.start()

    # The greeter hands over; the meal agent speaks first, with its own prompt and tools.
    fake_llm.reply_tool_call("transfer_to_meal_agent")
    fake_llm.reply("What did you have for breakfast?")
    replies = await runner.send_text("I'm doing well, thanks!")
    assert replies[-1] == "What did you have for breakfast?"
    greeter_request, meal_request = fake_llm.requests
    assert greeter_request.system_prompt == "Greet John Doe warmly."
    assert set(greeter_request.tool_names) == {"transfer_to_meal_agent", "end_call"}
    assert meal_request.system_prompt == "Ask John Doe what they ate."
    assert set(meal_request.tool_names) == {"save_meal", "transfer_to_feedback_agent", "end_call"}
    assert meal_request.tool("transfer_to_feedback_agent")["description"] == "After meals"
    assert "Greet" not in str(meal_request.messages)  # the old prompt did not carry over
    assert meal_request.last_user_text == "I'm doing well, thanks!"  # the conversation did

    fake_llm.reply_tool_call("save_meal", {"meal_type": "breakfast", "food": "eggs"})
    fake_llm.reply("Eggs, lovely.")
    assert await runner.send_text("Eggs") == ["Eggs, lovely."]

    # Handing over to an agent with a greeting: the greeting is its first words.
    fake_llm.reply_tool_call("transfer_to_feedback_agent")
    assert await runner.send_text("That's all I ate") == ["One last thing: how was your day?"]
    assert fake_llm.unscripted == 0

    await runner.end(EndReason.USER_HANGUP)
    call = await call_view(client, call_id)
    assert call["agent_history"] == ["greeter-agent", "meal-agent", "feedback-agent"]
    assert call["current_agent"] is None
    assert call["metrics"]["agent_handoffs"] == 2
    assert call["collected_data"] == {"save_meal": [{"meal_type": "breakfast", "food": "eggs"}]}
    entries = await transcript(client, call_id)
    said = [(e["role"], e["content"], e["agent_name"], e.get("tool_call")) for e in entries]
    assert said == [
        ("system", "Call started", "greeter-agent", None),
        ("assistant", "Hello John Doe! How are you today?", "greeter-agent", None),
        ("user", "I'm doing well, thanks!", "greeter-agent", None),
        ("assistant", "", "greeter-agent", {"name": "transfer_to_meal_agent", "arguments": {}}),
        ("system", "Handoff from greeter-agent to meal-agent", "meal-agent", None),
        ("assistant", "What did you have for breakfast?", "meal-agent", None),
        ("user", "Eggs", "meal-agent", None),
        (
            "assistant",
            "",
            "meal-agent",
            {"name": "save_meal", "arguments": {"meal_type": "breakfast", "food": "eggs"}},
        ),
        ("assistant", "Eggs, lovely.", "meal-agent", None),
        ("user", "That's all I ate", "meal-agent", None),
        ("assistant", "", "meal-agent", {"name": "transfer_to_feedback_agent", "arguments": {}}),
        ("system", "Handoff from meal-agent to feedback-agent", "feedback-agent", None),
        ("assistant", "One last thing: how was your day?", "feedback-agent", None),
        ("system", "Call ended (user_hangup)", None, None),
    ]
