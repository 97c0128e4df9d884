"""How the demo estate's raw landing tables become its clean entities.

One :class:`EntityMapping` per entity, in an order where every lookup's reference is
cleaned first (products before order lines). ``REFERENCES`` says which warehouse table
each lookup reads and ``REFERENCE_FILES`` which files are landed as reference tables;
``PARTIES`` declares how CRM accounts, ERP customers and logistics consignees are resolved
into one party each.
"""

from __future__ import annotations

import polars as pl

from normalization import Derived, EntityMapping, From, Lookup, PartySource, Resolution

from .entities import Account, Contact, Customer, Order, OrderLine, Product, Shipment, Ticket

LEGACY_NULL_DATE = ("sentinel_to_null", {"values": ["1900-01-01"]})
ERP_TIME = ("timestamp", {"naive_zone": "UTC"})
TRIMMED = ("trim",)
ORDER_STATUS = ("codes", {"mapping": {"NEW": "new", "SHP": "shipped", "CAN": "cancelled",
                                      "HLD": "on_hold"}})
# Exact arithmetic: polars keeps the larger scale of two decimals, so widen first.
_WIDE = pl.Decimal(38, 8)

CUSTOMER = EntityMapping(
    entity="customer", source="raw_erp__customers", schema=Customer,
    primary_key=("CUST_NO",), cursor="Last_Update",
    columns={
        "customer_no": From("CUST_NO", "trim"),
        "name": From("Cust Name", "trim", "repair_mojibake"),
        "active": From("ACTIVE_YN", "flag"),
        "opened_on": From("OPENED_DT", LEGACY_NULL_DATE),
        "credit_limit": From("CREDIT_LIMIT_CENTS", "cents"),
        "region": From("REGION", "trim", "upper"),
        "updated_at": From("Last_Update", ERP_TIME),
    },
)

PRODUCT = EntityMapping(
    entity="product", source="raw_erp__products", schema=Product,
    primary_key=("SKU",), cursor="UPDATED_AT",
    columns={
        "sku": From("SKU", "trim"),
        "description": From("DESCRIPTION", "trim", "blank_as_null"),
        "unit_price": From("UNIT_PRICE"),
        "weight_kg": From("WEIGHT_KG"),
        "discontinued": From("DISCONTINUED", "flag"),
        "updated_at": From("UPDATED_AT", ERP_TIME),
    },
)

ORDER = EntityMapping(
    entity="order", source="raw_erp__orders", schema=Order,
    primary_key=("order_no",), cursor="updated_at",
    columns={
        "order_no": From("order_no"),
        "customer_no": From("cust_no", "trim"),
        "ordered_on": From("order_date"),
        "shipped_on": From("ship_date", LEGACY_NULL_DATE),
        "status": From("status", ORDER_STATUS),
        "total": From("total_cents", "cents"),
        "entered_by": From("user", "trim"),
        "is_shipped": Derived(pl.col("shipped_on").is_not_null(), inputs=["shipped_on"],
                              transform="shipped_on is not null"),
        "updated_at": From("updated_at", ERP_TIME),
    },
)

ORDER_LINE = EntityMapping(
    entity="order_line", source="raw_erp__order_lines", schema=OrderLine,
    primary_key=("ORDER_NO", "LINE_NO"), cursor="updated_at",
    columns={
        "order_no": From("ORDER_NO"),
        "line_no": From("LINE_NO"),
        "sku": From("SKU", "trim"),
        "quantity": From("QTY"),
        "unit_price": From("UNIT_PRICE_CENTS", "cents"),
        "discount_pct": From("DISCOUNT_PCT"),
        "line_amount": Derived(
            lambda: (pl.col("quantity").cast(_WIDE) * pl.col("unit_price").cast(_WIDE)
                     * (100 - pl.col("discount_pct").cast(_WIDE)) / 100).round(2),
            inputs=["quantity", "unit_price", "discount_pct"],
            transform="quantity * unit_price * (100 - discount_pct) / 100, "
                      "rounded half to even to cents",
        ),
        "updated_at": From("updated_at", ERP_TIME),
    },
    lookups=[Lookup("product", on={"sku": "sku"}, columns={"product_description": "description"},
                    asset="clean_product")],
)

ACCOUNT = EntityMapping(
    entity="account", source="raw_crm__accounts", schema=Account,
    primary_key=("id",), cursor="updated_at",
    columns={
        "account_id": From("id", "trim"),
        "name": From("name", "trim", "repair_mojibake"),
        "industry": From("industry", "trim"),
        "country": From("country", "country"),
        "annual_revenue": From("annual_revenue", ("sentinel_to_null", {"values": ["0.00"]}),
                               "decimal"),
        "street": From("address__street", "trim", "blank_as_null"),
        "city": From("address__city", "trim", "blank_as_null"),
        "postal_code": From("address__postal_code", "trim", "blank_as_null"),
        "tags": From("tags"),
        "erp_customer_no": From("erp_customer_no", "trim", "blank_as_null", "upper"),
        "created_at": From("created_at", "timestamp"),
        "updated_at": From("updated_at", "timestamp"),
    },
)

CONTACT = EntityMapping(
    entity="contact", source="raw_crm__contacts", schema=Contact,
    primary_key=("id",), cursor="updated_at",
    columns={
        "contact_id": From("id"),
        "account_id": From("account_id", "trim"),
        "first_name": From("first_name", "trim"),
        "last_name": From("last_name", "trim"),
        "email": From("email", "blank_as_null", "email"),
        "phone": From("phone", "blank_as_null", ("phone", {"default_country_code": "1"})),
        "updated_at": From("updated_at", "timestamp"),
    },
)

TICKET = EntityMapping(
    entity="ticket", source="raw_crm__tickets", schema=Ticket,
    primary_key=("id",), cursor="updated_at",
    columns={
        "ticket_id": From("id"),
        "account_id": From("account_id", "trim"),
        "subject": From("subject", "trim"),
        "status": From("status", "trim", "lower"),
        "priority": From("priority", "trim", "lower"),
        "is_open": Derived(pl.col("status") != "closed", inputs=["status"],
                           transform="status is not closed"),
        "opened_at": From("opened_at", "timestamp"),
        "updated_at": From("updated_at", "timestamp"),
    },
)

SHIPMENT = EntityMapping(
    entity="shipment", source="raw_logistics__shipments", schema=Shipment,
    primary_key=("id",), cursor="updatedAt",
    columns={
        "shipment_id": From("id", "trim"),
        "consignee": From("consignee", "trim", "repair_mojibake"),
        "origin": From("origin", "trim"),
        "destination": From("destination", "trim"),
        "weight_kg": From("weightKg"),
        "declared_value": From("declaredValue"),
        "currency": From("currency", "currency"),
        "declared_value_eur": Derived(
            lambda: (pl.col("declared_value").cast(_WIDE)
                     * pl.col("fx_rate_to_eur").cast(_WIDE)).round(2),
            inputs=["declared_value", "fx_rate_to_eur"],
            transform="declared_value * fx_rate_to_eur, rounded half to even to cents",
        ),
        "status": From("status", "trim", "upper"),
        "shipped_at": From("shippedAt", "timestamp"),
        "delivered_at": From("deliveredAt", "timestamp"),
        "updated_at": From("updatedAt", "timestamp"),
    },
    lookups=[Lookup("fx_rates", on={"currency": "currency"},
                    columns={"fx_rate_to_eur": "rate_to_eur"}, asset="ref_fx_rates")],
)

MAPPINGS: tuple[EntityMapping, ...] = (
    CUSTOMER, PRODUCT, ORDER, ORDER_LINE, ACCOUNT, CONTACT, TICKET, SHIPMENT,
)

# Lookup reference name -> the warehouse table it is read from.
REFERENCES = {"product": "clean_product", "fx_rates": "ref_fx_rates"}
# Reference files landed as ref_<name> before the entities (in the demo estate's package).
REFERENCE_FILES = {"fx_rates": "fx_rates.csv"}  # beside this module

PARTIES = Resolution(
    name="party",
    sources=(
        PartySource("erp", "customer", key="customer_no", name="name"),
        PartySource("crm", "account", key="account_id", name="name",
                    links={"erp": "erp_customer_no"}),
        PartySource("logistics", "shipment", key="consignee", name="consignee"),
    ),
)
