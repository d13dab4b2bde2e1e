"""rest/rsgi.py's ByteBudget: bodies buffered at once stay within the budget; small ones are not held behind large."""
import asyncio

from server.rest.rsgi import ByteBudget


def test_small_requests_pass_the_waiting_line_large_ones_wait_in_order():
    async def scenario():
        budget = ByteBudget(100, small=10)
        assert await budget.take(80) == 80
        large = asyncio.ensure_future(budget.take(50))        # does not fit: waits
        medium = asyncio.ensure_future(budget.take(15))       # fits, but is not small: waits behind `large`
        await asyncio.sleep(0)
        assert not large.done() and not medium.done()
        assert await asyncio.wait_for(budget.take(5), 1) == 5  # small and fits: goes ahead
        assert budget.free == 15
        budget.give(80)                                        # 95 free: the line is served in order
        assert await asyncio.wait_for(large, 1) == 50
        assert await asyncio.wait_for(medium, 1) == 15
        assert budget.free == 100 - 5 - 50 - 15
        small_too_big = asyncio.ensure_future(budget.take(40))  # more than is free: waits
        await asyncio.sleep(0)
        assert not small_too_big.done()
        budget.give(50)
        assert await asyncio.wait_for(small_too_big, 1) == 40
        assert budget.free == 30 + 50 - 40

    asyncio.run(scenario())


def test_a_body_larger_than_the_budget_gets_all_of_it_alone():
    async def scenario():
        budget = ByteBudget(100, small=10)
        assert await budget.take(500) == 100
        waiting = asyncio.ensure_future(budget.take(1))       # small, but nothing is free
        await asyncio.sleep(0)
        assert not waiting.done()
        budget.give(100)
        assert await asyncio.wait_for(waiting, 1) == 1

    asyncio.run(scenario())
