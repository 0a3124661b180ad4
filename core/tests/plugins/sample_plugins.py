"""Source text of throwaway plugin modules used by the host tests."""

GOOD = '''
import capa


class Thermo(capa.Adapter):
    """A test thermometer."""

    id = "acme.thermo"

    class Params(capa.ConfigModel):
        port: str = "sim://"

    @classmethod
    def resource_id(cls, params):
        return f"sim:{params.port}"

    @classmethod
    def fields(cls, params):
        return [capa.FieldSpec("temperature", "degC")]

    async def open(self):
        pass

    async def close(self):
        pass

    async def read(self):
        return []

    async def command(self, command):
        return capa.CommandResult(accepted=False, detail="read-only")


class Soak(capa.Procedure):
    """Hold for a while."""

    id = "acme.soak"

    class Config(capa.ConfigModel):
        duration_s: float = 1.0

    async def run(self, ctx):
        pass


class Beep(capa.Step):
    """Beep once."""

    kind = "beep"

    class Config(capa.StepConfig):
        pitch_hz: float = 440.0

    async def execute(self, ctx):
        pass


@capa.hookimpl
def capa_register_adapters():
    return [Thermo]


@capa.hookimpl
def capa_register_procedures():
    return [Soak]


@capa.hookimpl
def capa_register_steps():
    return [Beep]
'''

# Registers an adapter under the id GOOD already uses, from another distribution.
DUPLICATE = '''
import capa


class OtherThermo(capa.Adapter):
    """Same id, different code."""

    id = "acme.thermo"

    class Params(capa.ConfigModel):
        pass

    @classmethod
    def resource_id(cls, params):
        return "sim:other"

    @classmethod
    def fields(cls, params):
        return [capa.FieldSpec("t", "degC")]

    async def open(self):
        pass

    async def close(self):
        pass

    async def read(self):
        return []

    async def command(self, command):
        return capa.CommandResult(accepted=True)


@capa.hookimpl
def capa_register_adapters():
    return [OtherThermo]
'''

IMPORT_ERROR = """
import capa
import a_module_that_does_not_exist_anywhere  # noqa: F401
"""

# Violates the contract three ways: permissive config, sync run(), no docstring.
CONTRACT_VIOLATION = '''
import capa
from pydantic import BaseModel


class Sloppy(capa.Procedure):
    id = "acme.sloppy"

    class Config(BaseModel):
        x: int = 0

    def run(self, ctx):
        pass


class Fine(capa.Procedure):
    """A valid procedure next to the broken one."""

    id = "acme.fine"
    Config = capa.EmptyConfig

    async def run(self, ctx):
        pass


@capa.hookimpl
def capa_register_procedures():
    return [Sloppy, Fine]
'''

HOOK_TYPO = """
import capa


@capa.hookimpl
def capa_register_adaptors():
    return []
"""

RAISING_HOOK = """
import capa


@capa.hookimpl
def capa_register_sinks():
    raise RuntimeError("sink registry exploded")
"""

WITH_CLI = '''
import click
import capa


@capa.hookimpl
def capa_register_cli(group):
    @group.group("acme")
    def acme():
        """Acme instruments."""

    @acme.command("hello")
    @click.argument("who")
    def hello(who):
        """Greet WHO."""
        click.echo(f"hello {who} from acme")
'''

CANARY = """
import os
from pathlib import Path

Path(os.environ["CAPA_TEST_CANARY"]).write_text("imported")
"""
