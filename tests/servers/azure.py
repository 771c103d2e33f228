"""Azurite: Azure Blob, Queue and Table storage, from npm (installed by scripts/test under .cache/node)."""

from __future__ import annotations

from . import ROOT, Server, find_program, free_port, missing, port_open, spawn

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(blob: int, queue: int, table: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table}/{ACCOUNT};"
    )


def start_azurite() -> Server:
    program = find_program("azurite", ROOT / ".cache" / "node" / "node_modules" / ".bin")
    if program is None:
        missing("azurite", "npm install --prefix .cache/node azurite")
    blob, queue, table = free_port(), free_port(), free_port()
    server = spawn(
        "azurite",
        [
            program, "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
            "--blobHost", "127.0.0.1", "--blobPort", str(blob),
            "--queueHost", "127.0.0.1", "--queuePort", str(queue),
            "--tableHost", "127.0.0.1", "--tablePort", str(table),
        ],
        table,
        server_env={"AZURE_STORAGE_CONNECTION_STRING": connection_string(blob, queue, table)},
    )
    for port in (blob, queue):
        while not port_open(port):
            if server.process is not None and server.process.poll() is not None:
                missing("azurite (it exited)", "npm install --prefix .cache/node azurite")
    return server


#: The session fixtures tests/conftest.py makes from this module: fixture name -> start function.
FIXTURES = {"azurite": start_azurite}
