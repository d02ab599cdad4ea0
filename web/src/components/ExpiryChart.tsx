// The expiry timeline: certificates expiring per week, stacked by owner (Recharts). The same
// numbers follow as a table, for screen readers and keyboards: a week's counts link to the
// inventory filtered to that week (and owner, where the series is one owner).
import { Link } from 'react-router';
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { ExpiryStats } from '../api/stats';
import { searchFromFilters } from '../lib/inventoryQuery';
import { TableScroll } from './TableScroll';

// Distinct in both themes (Tableau 10 without its greys), in the order series come.
const SERIES_COLOURS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7'];
const OTHER_OWNERS_COLOUR = '#7f8894';
const NO_OWNER_COLOUR = '#b6bcc6';

const weekFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });

/** YYYY-MM-DD of an RFC 3339 time (UTC), as the inventory's expiry filters take it. */
function utcDate(iso: string): string {
  return new Date(iso).toISOString().slice(0, 10);
}

function nextWeek(iso: string): string {
  return new Date(new Date(iso).getTime() + 7 * 24 * 3600 * 1000).toISOString();
}

function colourOf(series: ExpiryStats['series'][number], index: number): string {
  if (series.owner_id) return SERIES_COLOURS[index % SERIES_COLOURS.length] ?? OTHER_OWNERS_COLOUR;
  return series.label === 'no owner' ? NO_OWNER_COLOUR : OTHER_OWNERS_COLOUR;
}

function weekTotal(stats: ExpiryStats, week: number): number {
  return stats.series.reduce((sum, series) => sum + (series.counts[week] ?? 0), 0);
}

/** The inventory filtered to the week starting `weekStart`, and to an owner (by name) when given. */
function inventoryLink(weekStart: string, owner: string | null): string {
  const search = searchFromFilters({
    expires_after: utcDate(weekStart),
    expires_before: utcDate(nextWeek(weekStart)),
    owner: owner ?? undefined,
  });
  return `/certificates?${search.toString()}`;
}

export default function ExpiryChart({ stats }: { stats: ExpiryStats }) {
  // One row per week; series are keyed by position, as labels need not be unique keys.
  const rows = stats.week_starts.map((weekStart, week) => {
    const row: Record<string, string | number> = { week: weekFormat.format(new Date(weekStart)) };
    stats.series.forEach((series, index) => {
      row[`s${index}`] = series.counts[week] ?? 0;
    });
    return row;
  });
  const total = stats.series.reduce((sum, series) => sum + series.counts.reduce((a, b) => a + b, 0), 0);

  return (
    <>
      <p className="muted">
        {total === 0
          ? `No certificate expires in the next ${stats.week_starts.length} weeks.`
          : `${total} certificate${total === 1 ? ' expires' : 's expire'} in the next ${stats.week_starts.length} weeks.`}
      </p>
      {/* Hidden from screen readers: the table below has the same numbers. */}
      <div className="chart" aria-hidden="true" data-testid="expiry-chart">
        <ResponsiveContainer width="100%" height="100%" initialDimension={{ width: 800, height: 320 }}>
          <BarChart data={rows} margin={{ top: 8, right: 16, bottom: 8, left: 0 }} accessibilityLayer={false}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} />
            <XAxis dataKey="week" tickLine={false} />
            <YAxis allowDecimals={false} width={40} />
            <Tooltip />
            <Legend />
            {stats.series.map((series, index) => (
              <Bar
                key={`${series.label}-${index}`}
                dataKey={`s${index}`}
                name={series.label}
                stackId="owners"
                fill={colourOf(series, index)}
                isAnimationActive={false}
              />
            ))}
          </BarChart>
        </ResponsiveContainer>
      </div>
      <details>
        <summary>Show as a table</summary>
        <TableScroll label="Expiring per week, table">
          <table>
            <caption className="visually-hidden">Certificates expiring per week, by owner</caption>
            <thead>
              <tr>
                <th scope="col">Week of</th>
                {stats.series.map((series, index) => (
                  <th key={`${series.label}-${index}`} scope="col" className="num">
                    {series.label}
                  </th>
                ))}
                <th scope="col" className="num">
                  All
                </th>
              </tr>
            </thead>
            <tbody>
              {stats.week_starts.map((weekStart, week) => (
                <tr key={weekStart}>
                  <th scope="row">{weekFormat.format(new Date(weekStart))}</th>
                  {stats.series.map((series, index) => {
                    const count = series.counts[week] ?? 0;
                    return (
                      <td key={`${series.label}-${index}`} className="num">
                        {count > 0 && series.owner_id ? (
                          <Link to={inventoryLink(weekStart, series.label)}>{count}</Link>
                        ) : (
                          count
                        )}
                      </td>
                    );
                  })}
                  <td className="num">
                    <Link to={inventoryLink(weekStart, null)}>{weekTotal(stats, week)}</Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      </details>
    </>
  );
}
