"""The implementation of the unit converter that examples/tool_use.yaml declares as a JSON schema."""

FACTORS = {  # to the base unit of each dimension: metre, kilogram, litre
    "km": 1000.0, "m": 1.0, "cm": 0.01, "mi": 1609.344, "ft": 0.3048, "in": 0.0254,
    "kg": 1.0, "g": 0.001, "lb": 0.45359237, "oz": 0.028349523125,
    "l": 1.0, "ml": 0.001, "gal": 3.785411784,
}
DIMENSION = {**dict.fromkeys(["km", "m", "cm", "mi", "ft", "in"], "length"),
             **dict.fromkeys(["kg", "g", "lb", "oz"], "mass"), **dict.fromkeys(["l", "ml", "gal"], "volume")}


def convert(value: float, from_unit: str, to_unit: str) -> dict:
    """Convert a quantity between units of the same dimension."""
    if DIMENSION[from_unit] != DIMENSION[to_unit]:
        raise ValueError(f"cannot convert {DIMENSION[from_unit]} ({from_unit}) to {DIMENSION[to_unit]} ({to_unit})")
    return {"value": round(value * FACTORS[from_unit] / FACTORS[to_unit], 6), "unit": to_unit}


def celsius_to_fahrenheit(celsius: float) -> float:
    """Degrees Celsius in degrees Fahrenheit."""
    return round(celsius * 9 / 5 + 32, 2)
