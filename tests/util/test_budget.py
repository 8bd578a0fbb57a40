import threading
import time

from gitrepro.util.budget import ByteBudget


def test_holders_never_hold_more_than_the_budget_together_and_a_big_one_goes_alone():
    budget, lock = ByteBudget(100), threading.Lock()
    held, peak, alone = [0], [0], []

    def take(n):
        with budget.hold(n):
            with lock:
                held[0] += n
                peak[0] = max(peak[0], held[0])
                if n > 100:
                    alone.append(held[0] == n)
            time.sleep(0.01)
            with lock:
                held[0] -= n

    threads = [threading.Thread(target=take, args=(n,)) for n in [40, 40, 40, 60, 150, 30, 70] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert held[0] == 0 and alone == [True] * 3
    assert peak[0] == 150          # the 150 alone; every other moment stayed within 100
