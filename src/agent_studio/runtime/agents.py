"""Workflow agents as livekit `Agent`s: instructions, own providers, tools, handoffs, end_call.

Handoff pitfall (runtime-notes): the reply right after a handoff tool call would be generated
with the old agent's instructions. So a handoff tool asks for no reply, and the new agent
speaks first from its own `on_enter` (its greeting, or a generated reply), with its own
instructions and tools from the very first word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livekit.agents import Agent, RunContext
from livekit.agents.llm import ChatContext
from livekit.agents.voice import SpeechHandle

from agent_studio.core.snapshot import AgentSnapshot, CallSnapshot
from agent_studio.runtime import tools
from agent_studio.runtime.providers import CallProviders
from agent_studio.runtime.vad.stt import SharedVadSTT, VadTap


@dataclass(frozen=True, slots=True)
class AgentModels:
    stt: Any
    llm: Any
    tts: Any


class StudioAgent(Agent):
    """One workflow agent. `speak_on_enter`: take the floor when it becomes the active agent."""

    def __init__(
        self,
        spec: AgentSnapshot,
        *,
        models: AgentModels,
        agent_tools: list[Any],
        chat_ctx: ChatContext | None = None,
        speak_on_enter: bool = False,
    ) -> None:
        super().__init__(
            id=spec.name,
            instructions=spec.instructions,
            chat_ctx=chat_ctx,
            tools=agent_tools,
            stt=models.stt,
            llm=models.llm,
            tts=models.tts,
        )
        self.spec = spec
        self._speak_on_enter = speak_on_enter

    async def on_enter(self) -> None:
        if self._speak_on_enter:
            self.take_floor()

    def greet(self) -> SpeechHandle | None:
        """The entry agent's start: its greeting if it has one; otherwise it waits for the user."""
        return self.session.say(self.spec.greeting) if self.spec.greeting else None

    def take_floor(self) -> None:
        """After a handoff: the greeting if set, else a reply generated with these instructions."""
        if self.spec.greeting:
            self.session.say(self.spec.greeting)
        else:
            self.session.generate_reply()


def carried_over(chat_ctx: ChatContext) -> ChatContext:
    """The conversation the next agent inherits: what was said, without the old agent's
    instructions and tool calls (the new agent has other tools; some providers refuse calls
    to tools they were not given)."""
    return chat_ctx.copy(
        exclude_function_call=True,
        exclude_instructions=True,
        exclude_handoff=True,
        exclude_config_update=True,
        exclude_empty_message=True,
    )


class WorkflowAgents:
    """Builds the call's agents. `prepare()` creates every provider up front, so a missing key
    or a bad setting fails the call at its start, not in the middle of a handoff."""

    def __init__(
        self,
        snapshot: CallSnapshot,
        providers: CallProviders,
        host: tools.ToolHost,
        *,
        voice: bool,
        vad: Any = None,
    ) -> None:
        self.snapshot = snapshot
        self._providers = providers
        self._host = host
        self._voice = voice
        # A call VAD (voice_session.call_vad) whose streams a non-streaming STT can follow.
        self._vad = vad if getattr(vad, "tapped", None) is not None and VadTap.supported() else None
        self._models: dict[str, AgentModels] = {}

    async def prepare(self) -> None:
        for name, agent in self.snapshot.agents.items():
            llm = await self._providers.build(agent.llm, agent.language)
            stt = tts = None
            if self._voice:
                stt = await self._providers.build(agent.stt, agent.language)
                if not stt.capabilities.streaming and self._vad is not None:
                    stt = SharedVadSTT(stt, self._vad)  # cut at the session VAD's turns
                tts = await self._providers.build(agent.tts, agent.language)
            self._models[name] = AgentModels(stt=stt, llm=llm, tts=tts)

    def build(
        self, name: str, *, chat_ctx: ChatContext | None = None, speak_on_enter: bool = False
    ) -> StudioAgent:
        spec = self.snapshot.agent(name)
        return StudioAgent(
            spec,
            models=self._models[name],
            agent_tools=self._tools_for(spec),
            chat_ctx=chat_ctx,
            speak_on_enter=speak_on_enter,
        )

    def entry(self) -> StudioAgent:
        return self.build(self.snapshot.entry_agent)

    def _tools_for(self, spec: AgentSnapshot) -> list[Any]:
        agent_tools = tools.configured_tools(spec.tools, self._host)
        agent_tools += [
            tools.handoff_tool(handoff, self._next_agent)
            for handoff in self.snapshot.handoffs_from(spec.name)
        ]
        if self.snapshot.settings.end_call_enabled:
            agent_tools.append(tools.end_call_tool(self._host))
        return agent_tools

    def _next_agent(self, name: str, context: RunContext[Any]) -> Agent:
        current = context.session.current_agent
        return self.build(name, chat_ctx=carried_over(current.chat_ctx), speak_on_enter=True)
