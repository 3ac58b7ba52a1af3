"""Committing a plan, and isolating the message that makes a batch fail.

When writing a whole batch fails on its content (the database refused a
value, or writing raised), the messages are written one by one; each one that
still fails is dead-lettered with the reason, and the rest are stored. Bad
input costs its own message, nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg

from collector.database import PlanWriter
from collector.intake import Committed
from collector.pipeline import Limits, Message, Plan, dead_letter_plan, plan_batch

logger = logging.getLogger(__name__)


def commit(writer: PlanWriter, plan: Plan, limits: Limits) -> Committed | None:
    """Write the plan (isolating bad messages); ``None`` when stopped before it could be written."""
    try:
        return [(plan, writer.write(plan))]
    except psycopg.OperationalError:
        return None
    except Exception as exc:
        # The database refused a value, or writing the plan failed on one
        # message's content: find that message, dead-letter it, keep the rest.
        logger.warning("writing a batch of %d messages failed (%s); isolating", len(plan.messages), exc)
    return commit_one_by_one(writer, plan.messages, limits)


def commit_one_by_one(writer: PlanWriter, messages: Sequence[Message], limits: Limits) -> Committed | None:
    committed: Committed = []
    for message in messages:
        plan = plan_batch([message], datetime.now(UTC), limits)
        try:
            committed.append((plan, writer.write(plan)))
            continue
        except psycopg.OperationalError:
            return None
        except psycopg.Error as exc:
            reason = f"database refused: {str(exc).strip()[:500]}"
            logger.warning("dead-lettering a message on %s: %s", message.topic, reason)
        except Exception as exc:
            reason = f"write failed: {type(exc).__name__}: {str(exc).strip()[:500]}"
            logger.warning("dead-lettering a message on %s: %s", message.topic, reason)
        letters = dead_letter_plan([message], reason)
        try:
            committed.append((letters, writer.write(letters)))
        except psycopg.OperationalError:
            return None
    return committed
