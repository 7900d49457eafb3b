// Draws the overview's charts (Chart.js) from the JSON the page carries.
const data = JSON.parse(document.getElementById("chart-data").textContent);
const colours = ["#3366cc", "#dc3912", "#109618"];
for (const [name, series] of Object.entries(data)) {
  const canvas = document.getElementById(`chart-${name}`);
  if (!canvas) continue;
  new Chart(canvas, {
    type: "line",
    data: {
      labels: series.labels.map((l) => l.slice(11, 16)),
      datasets: Object.entries(series.lines).map(([label, values], i) => ({
        label, data: values, borderColor: colours[i % colours.length], spanGaps: false,
      })),
    },
    options: { animation: false, scales: { y: { beginAtZero: true } } },
  });
}
