"""Example pricing plugin in Python: graduated memory tiers.

The same invoice lines, to the last digit, and the same errors as the Rust example beside it
(../tiered-pricing/src/lib.rs). kubeop asks the `pricing` plugin for a tenant's invoice lines.
This one prices like the built-in default, except that memory gets cheaper in volume:

- the first 1,000,000 MiB-hours of the period cost the tenant's memory rate
  (`rates.mem-mib-hour`);
- every MiB-hour above that costs half the rate.

CPU is `rates.cpu-milli-hour` per milli-CPU hour, and `rates.discount-percent` comes off the
total, as in the default.

Build it with `./build.sh` (componentize-py embeds this module and a Python interpreter in one
WebAssembly component). Swapping it in needs no restart: upload the component to the pricing
slot and the next invoice uses it.

Money is exact: amounts are `decimal.Decimal`, never floats. Each amount is rounded once, half
to even (banker's rounding), to the currency's precision.

Plugins are pure functions of their request: the host gives them no files, network or
environment, and stops a call that runs too long or uses too much memory. componentize-py runs
this module's top level once, at build time, and every call starts from a snapshot of it: keep
the top level to imports and constants.
"""

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, localcontext

# `wit_world` is generated from wit/plugin.wit by componentize-py when it builds the component
# (`.venv/bin/componentize-py -d ../../../wit -w pricing bindings .` writes it here too, for an
# editor; build.sh does not need it). It holds:
# - `WitWorld`, the protocol our class implements (one method per export: `price`);
# - `imports.types`: the records, as dataclasses with snake_case fields (`PricingRequest`,
#   `InvoiceLine`, …);
# - `imports.host`: `log` and its `Level`, the one function the host offers.
import wit_world
from componentize_py_types import Err
from wit_world.imports import types
from wit_world.imports.host import Level, log

# MiB-hours billed at the full memory rate; above this, half the rate.
MEMORY_TIER = 1_000_000

# The Rust plugin computes with rust_decimal: a 96-bit integer and at most 28 decimal places.
# Python's decimals are unbounded, so the limits are applied by hand (`fit`) wherever rust_decimal
# applies them, which makes the errors and the rare rounding of a huge intermediate value the same.
MAX_MANTISSA = 2**96 - 1
MAX_SCALE = 28

# Enough digits that no operation below rounds on its own: the widest intermediate value (a
# usage total times a rate of 28 digits) has about 60. Only `quantize` rounds, and only where we
# ask it to.
EXACT = Context(prec=200, rounding=ROUND_HALF_EVEN)


class PricingError(Exception):
    """A request this plugin refuses to price, with the reason."""


class AmountTooLarge(Exception):
    """An amount beyond what rust_decimal holds."""


class WitWorld(wit_world.WitWorld):
    """The plugin. It has no state: each call gets everything it needs in its request.

    The class must be named `WitWorld`: componentize-py looks for the world's protocol by that
    name in the app module.
    """

    def price(self, request: types.PricingRequest) -> list[types.InvoiceLine]:
        # The WIT result's error case is raised as `Err(message)`; returning is the ok case.
        try:
            with localcontext(EXACT):
                return price(request)
        except PricingError as err:
            message = str(err)
        except AmountTooLarge:
            message = "an amount is too large to compute"
        # An error fails the invoice request (503); say why in kubeop's log too.
        log(Level.WARN, f"cannot price tenant {request.tenant_id}: {message}")
        raise Err(message)


def price(request: types.PricingRequest) -> list[types.InvoiceLine]:
    # The rates are decimal strings ("0.0004"); refuse anything else rather than guess.
    rates = request.rates
    cpu_rate = parse_rate("cpu-milli-hour", rates.cpu_milli_hour)
    mem_rate = parse_rate("mem-mib-hour", rates.mem_mib_hour)
    discount = parse_rate("discount-percent", rates.discount_percent)
    if discount > 100:
        raise PricingError(f"rates.discount-percent {rates.discount_percent} is more than 100")
    if rates.precision > MAX_SCALE:
        raise PricingError(f"rates.precision {rates.precision} is more than 28")
    precision = rates.precision

    # Total usage over the period (Python's integers do not overflow).
    cpu_milli_hours = sum(hour.cpu_milli for hour in request.usage)
    mem_mib_hours = sum(hour.mem_mib for hour in request.usage)

    lines = []
    # The sum of the rounded amounts, which the discount applies to.
    subtotal = Decimal(0)

    def add(description: str, quantity: int, unit: str, unit_price: Decimal) -> None:
        nonlocal subtotal
        line, amount = finish(description, quantity, unit, unit_price, precision)
        subtotal = fit(subtotal + amount)
        lines.append(line)

    add("CPU usage (milli-CPU hours)", cpu_milli_hours, "cpu-milli-hour", cpu_rate)

    # Memory: one line below the threshold, two when the usage crosses it.
    if mem_mib_hours <= MEMORY_TIER:
        add("Memory usage (MiB hours)", mem_mib_hours, "mem-mib-hour", mem_rate)
    else:
        half_rate = normalize(fit(mem_rate / 2))  # exact: 0.00001 / 2 = 0.000005
        add(f"Memory, first {MEMORY_TIER} MiB-hours", MEMORY_TIER, "mem-mib-hour", mem_rate)
        add(f"Memory above {MEMORY_TIER} MiB-hours", mem_mib_hours - MEMORY_TIER, "mem-mib-hour", half_rate)

    # The discount: a negative line, N% of the sum of the amounts above, rounded once.
    if not discount.is_zero():
        off = fit(fit(subtotal * discount) / 100)
        amount = plain(round_amount(-off, precision))
        lines.append(
            types.InvoiceLine(
                description=f"Discount ({plain(normalize(discount))}%)",
                quantity="1",
                unit="discount",
                unit_price=amount,
                amount=amount,
            )
        )
    return lines


def finish(description: str, quantity: int, unit: str, unit_price: Decimal, precision: int):
    """The invoice line (quantity × unit price, rounded), and its amount."""
    quantity = fit(Decimal(quantity))
    amount = round_amount(fit(quantity * unit_price), precision)
    line = types.InvoiceLine(
        description=description,
        quantity=plain(quantity),
        unit=unit,
        unit_price=plain(unit_price),
        amount=plain(amount),
    )
    return line, amount


def round_amount(value: Decimal, precision: int) -> Decimal:
    """`value` rounded half to even, with exactly `precision` decimal places."""
    # `quantize` both rounds (2.345 → 2.34) and pads (1.2 → 1.20).
    rounded = value.quantize(Decimal(1).scaleb(-precision), rounding=ROUND_HALF_EVEN)
    # rust_decimal cannot hold the padded value when its digits exceed 96 bits (an amount of 10
    # at precision 28, say): the Rust plugin reports that as an overflow, so we do too.
    if mantissa(rounded) > MAX_MANTISSA:
        raise AmountTooLarge
    if rounded.is_zero():
        rounded = rounded.copy_abs()  # 0.00, not -0.00
    return rounded


def parse_rate(name: str, text: str) -> Decimal:
    """A rate: a non-negative decimal in plain notation (an optional `-`, digits, an optional `.`
    and digits), as the WIT's `decimal` type says. `Decimal(text)` alone would also take "1e3",
    " 1", "NaN" and "Infinity"."""
    digits = text[1:] if text.startswith("-") else text
    whole, _, fraction = digits.partition(".")
    if "." not in digits:
        fraction = "0"
    if not (all_digits(whole) and all_digits(fraction)):
        raise PricingError(f"rates.{name} {rust_debug(text)} is not a decimal number")
    try:
        # rust_decimal rounds digits beyond what it holds half up, and refuses an integer part
        # that does not fit.
        value = fit(Decimal(text), ROUND_HALF_UP)
    except AmountTooLarge:
        raise PricingError(f"rates.{name} {rust_debug(text)} is not a decimal number") from None
    if value.is_zero():
        return value.copy_abs()  # rust_decimal reads "-0.000" as 0.000, and prints it so
    if value.is_signed():
        raise PricingError(f"rates.{name} {text} is negative")
    return value


def all_digits(text: str) -> bool:
    # Only 0-9: `str.isdigit` also accepts other scripts' digits ("٣").
    return text != "" and all(c in "0123456789" for c in text)


def fit(value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """`value` as rust_decimal holds it: at most 28 decimal places and a 96-bit integer of
    digits, dropping decimal places (rounded) until it fits; too large without any is an
    overflow."""
    scale = max(-value.as_tuple().exponent, 0)
    if value.as_tuple().exponent > 0:
        value = value.quantize(Decimal(1))  # 1E+2 → 100: no negative scales in rust_decimal
    for target in range(min(scale, MAX_SCALE), -1, -1):
        rounded = value if target == scale else value.quantize(Decimal(1).scaleb(-target), rounding=rounding)
        if mantissa(rounded) <= MAX_MANTISSA:
            return rounded
    raise AmountTooLarge


def mantissa(value: Decimal) -> int:
    """The digits of `value` as one integer, without sign or decimal point."""
    return int("".join(map(str, value.as_tuple().digits)))


def normalize(value: Decimal) -> Decimal:
    """Trailing zeros of the fraction stripped (3.100 → 3.1), and -0 made 0, as rust_decimal's
    `normalize` does. Python's own may leave a positive exponent (100 → 1E+2); `plain` prints it
    as 100 either way."""
    return value.normalize().copy_abs() if value.is_zero() else value.normalize()


def plain(value: Decimal) -> str:
    """`value` in plain notation, its decimal places kept ("0.000005", "1.20"): Python's `str`
    would write 5E-6."""
    return format(value, "f")


def rust_debug(text: str) -> str:
    """`text` quoted as Rust's `{:?}` quotes a string, so that the error messages match."""
    escapes = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\0": "\\0", '"': '\\"', "\\": "\\\\"}
    quoted = "".join(
        escapes.get(c) or (c if c.isprintable() else f"\\u{{{ord(c):x}}}") for c in text
    )
    return f'"{quoted}"'
