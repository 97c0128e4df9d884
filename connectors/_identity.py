"""What a stream reads, as a catalog or lineage names it: no credentials, ever."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceIdentity:
    """The source object behind one stream.

    ``system`` is the connector's name; ``kind`` the technology (``postgresql``,
    ``mariadb``, ``sqlite``, ``rest``, ``soap``, or a custom connector's ``kind``);
    ``location`` where it lives (``postgresql database 'erp' at db:5432``, a base URL, a
    WSDL), credentials removed; ``object`` what is read (``erp.orders``,
    ``GET /api/tickets``, ``ListShipments``); ``object_kind`` what that is (``table``,
    ``query``, ``endpoint``, ``operation``, ``stream``).
    """

    system: str
    kind: str
    location: str
    object: str
    object_kind: str = "stream"

    def label(self) -> str:
        """``erp table 'orders'``, ``crm GET /api/tickets``, ``logistics operation
        ListShipments``: how lineage names the last hop."""
        if self.object_kind == "table":
            return f"{self.system} table {self.object!r}"
        if self.object_kind == "endpoint":
            return f"{self.system} {self.object}"
        return f"{self.system} {self.object_kind} {self.object}"
