"""The clean entities of the demo estate, as Pandera models (``pandera.polars``).

Each model is the contract of a ``clean_<entity>`` table: types, constraints, uniqueness
and a description per column, which the Dagster layer publishes as the asset's column
schema. Models hold no cleaning: the mappings in :mod:`headwater_demo.mappings` bring raw
rows to these types first, so a failed check means a bad value, not a bad format.
"""

from __future__ import annotations

import pandera.polars as pa
from pandera.engines import polars_engine as pe

UTC = {"time_unit": "us", "time_zone": "UTC"}
ORDER_STATUSES = ("new", "shipped", "cancelled", "on_hold")
REGIONS = ("EU", "NA", "APAC", "LATM", "MEA")
TICKET_STATUSES = ("open", "pending", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
SHIPMENT_STATUSES = ("CREATED", "IN_TRANSIT", "DELIVERED", "EXCEPTION")


def _money(precision: int = 18, **options: object) -> object:
    return pa.Field(dtype_kwargs={"precision": precision, "scale": 2}, **options)


class Customer(pa.DataFrameModel):
    """A customer of the ERP (``Customer Master``)."""

    customer_no: str = pa.Field(unique=True, str_matches=r"^C\d{5}$",
                                description="ERP customer number, CHAR padding trimmed")
    name: str = pa.Field(str_length={"min_value": 1}, description="registered name, trimmed")
    active: bool = pa.Field(description="Y/N flag ACTIVE_YN as a boolean")
    opened_on: pe.Date = pa.Field(nullable=True,
                                  description="account opened; null where the ERP said 1900-01-01")
    credit_limit: pe.Decimal = _money(ge=0, description="credit limit in the ERP currency")
    region: str = pa.Field(isin=REGIONS, description="sales region code")
    updated_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="last change in the ERP, UTC")

    class Config:
        strict = True


class Product(pa.DataFrameModel):
    """A product of the ERP catalogue (``PRODUCTS``)."""

    sku: str = pa.Field(unique=True, str_matches=r"^SKU-\d{5}$", description="stock keeping unit")
    description: str = pa.Field(nullable=True, description="catalogue text; null when blank")
    unit_price: pe.Decimal = _money(12, ge=0, description="list price per unit")
    weight_kg: pe.Decimal = pa.Field(dtype_kwargs={"precision": 10, "scale": 3}, ge=0,
                                     description="shipping weight per unit, kilograms")
    discontinued: bool = pa.Field(description="Y/N flag DISCONTINUED as a boolean")
    updated_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="last change in the ERP, UTC")

    class Config:
        strict = True


class Order(pa.DataFrameModel):
    """A sales order header of the ERP (``orders``)."""

    order_no: int = pa.Field(unique=True, ge=1, description="ERP order number")
    customer_no: str = pa.Field(str_matches=r"^C\d{5}$", description="ordering customer")
    ordered_on: pe.Date = pa.Field(description="order date")
    shipped_on: pe.Date = pa.Field(nullable=True,
                                   description="ship date; null (not 1900-01-01) if not shipped")
    status: str = pa.Field(isin=ORDER_STATUSES, description="order status, spelled out")
    total: pe.Decimal = _money(ge=0, description="order total from integer cents")
    entered_by: str = pa.Field(description="ERP user who entered the order")
    is_shipped: bool = pa.Field(description="true when a ship date is known")
    updated_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="last change in the ERP, UTC")

    class Config:
        strict = True


class OrderLine(pa.DataFrameModel):
    """A line of a sales order (``ORDER LINES``), priced and described."""

    order_no: int = pa.Field(ge=1, description="order the line belongs to")
    line_no: int = pa.Field(ge=1, description="line number within the order")
    sku: str = pa.Field(str_matches=r"^SKU-\d{5}$", description="product sold")
    product_description: str = pa.Field(nullable=True,
                                        description="the product's catalogue text")
    quantity: pe.Decimal = pa.Field(dtype_kwargs={"precision": 10, "scale": 3}, gt=0,
                                    description="units or kilograms sold")
    unit_price: pe.Decimal = _money(12, ge=0, description="price per unit from integer cents")
    discount_pct: pe.Decimal = pa.Field(dtype_kwargs={"precision": 5, "scale": 2},
                                        in_range={"min_value": 0, "max_value": 100},
                                        description="discount in percent")
    line_amount: pe.Decimal = _money(ge=0, description="quantity * price less discount")
    updated_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="last change in the ERP, UTC")

    class Config:
        strict = True
        unique = ["order_no", "line_no"]


class Account(pa.DataFrameModel):
    """A CRM account."""

    account_id: str = pa.Field(unique=True, str_matches=r"^ACC-\d{5}$",
                               description="CRM account id")
    name: str = pa.Field(str_length={"min_value": 1},
                         description="account name, trimmed, code-page damage repaired")
    industry: str = pa.Field(description="industry as the CRM classifies it")
    country: str = pa.Field(str_matches=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country")
    annual_revenue: pe.Decimal = _money(nullable=True, ge=0,
                                        description="annual revenue; null where the CRM said 0.00")
    street: str = pa.Field(nullable=True, description="street address")
    city: str = pa.Field(nullable=True, description="city")
    postal_code: str = pa.Field(nullable=True, description="postal code, leading zeros kept")
    tags: str = pa.Field(nullable=True, description="CRM tags as a JSON array")
    erp_customer_no: str = pa.Field(nullable=True, str_matches=r"^C\d{5}$",
                                    description="ERP customer number the CRM keeps, if any")
    created_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="created in the CRM, UTC")
    updated_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="last change in the CRM, UTC")

    class Config:
        strict = True


class Contact(pa.DataFrameModel):
    """A person at a CRM account."""

    contact_id: int = pa.Field(unique=True, ge=1, description="CRM contact id")
    account_id: str = pa.Field(str_matches=r"^ACC-\d{5}$", description="account of the contact")
    first_name: str = pa.Field(description="first name")
    last_name: str = pa.Field(description="last name")
    email: str = pa.Field(nullable=True, description="e-mail address, lower case")
    phone: str = pa.Field(nullable=True, str_matches=r"^\+\d{7,15}$",
                          description="phone number in E.164; null where the CRM had none")
    updated_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="last change in the CRM, UTC")

    class Config:
        strict = True


class Ticket(pa.DataFrameModel):
    """A CRM support ticket."""

    ticket_id: int = pa.Field(unique=True, ge=1, description="CRM ticket id")
    account_id: str = pa.Field(str_matches=r"^ACC-\d{5}$", description="account that raised it")
    subject: str = pa.Field(description="ticket subject")
    status: str = pa.Field(isin=TICKET_STATUSES, description="open, pending or closed")
    priority: str = pa.Field(isin=PRIORITIES, description="low, normal, high or urgent")
    is_open: bool = pa.Field(description="true unless closed")
    opened_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="when it was opened, UTC")
    updated_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="last change, UTC")

    class Config:
        strict = True


class Shipment(pa.DataFrameModel):
    """A consignment of the logistics service, valued in the reporting currency."""

    shipment_id: str = pa.Field(unique=True, str_matches=r"^SHP-\d{6}$",
                                description="carrier shipment id")
    consignee: str = pa.Field(str_length={"min_value": 1}, description="receiving party")
    origin: str = pa.Field(description="origin, country-city")
    destination: str = pa.Field(description="destination, country-city")
    weight_kg: pe.Decimal = pa.Field(dtype_kwargs={"precision": 12, "scale": 3}, gt=0,
                                     description="gross weight, kilograms")
    declared_value: pe.Decimal = _money(14, ge=0, description="declared value, own currency")
    currency: str = pa.Field(str_matches=r"^[A-Z]{3}$", description="ISO 4217 currency code")
    fx_rate_to_eur: pe.Decimal = pa.Field(dtype_kwargs={"precision": 12, "scale": 6}, gt=0,
                                          description="EUR per unit of the currency")
    declared_value_eur: pe.Decimal = _money(ge=0, description="declared value in EUR")
    status: str = pa.Field(isin=SHIPMENT_STATUSES, description="carrier status")
    shipped_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="picked up, UTC")
    delivered_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, nullable=True,
                                         description="delivered, UTC; null until delivered")
    updated_at: pe.DateTime = pa.Field(dtype_kwargs=UTC, description="last change, UTC")

    class Config:
        strict = True


ENTITY_MODELS: dict[str, type[pa.DataFrameModel]] = {
    "customer": Customer,
    "product": Product,
    "order": Order,
    "order_line": OrderLine,
    "account": Account,
    "contact": Contact,
    "ticket": Ticket,
    "shipment": Shipment,
}
